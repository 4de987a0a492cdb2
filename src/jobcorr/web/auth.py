"""Credentials for the dashboard (and, when asked, /metrics): HTTP basic auth or a bearer token.

    credentials = Credentials.from_env(os.environ)   # JOBCORR_DASHBOARD_USER/_PASSWORD/_TOKEN
    app = RequireCredentials(app, credentials)        # 401 unless one of them is presented

Credentials are compared as bytes in constant time; any header that is not one of them —
malformed, non-ASCII, an unknown scheme — is a 401, never an error. Schemes are matched
case-insensitively (RFC 7235). A user without a password is refused when configured.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobcorr.errors import InvalidSetting

ENV_USER, ENV_PASSWORD, ENV_TOKEN = (
    "JOBCORR_DASHBOARD_USER",
    "JOBCORR_DASHBOARD_PASSWORD",
    "JOBCORR_DASHBOARD_TOKEN",
)


@dataclass(frozen=True)
class Credentials:
    """Who may read: a basic-auth user and password, a bearer token, or both."""

    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if self.username and not self.password:
            raise InvalidSetting(
                f"a dashboard user without a password would let anyone in: set {ENV_PASSWORD} "
                f"too, or use {ENV_TOKEN}"
            )
        if self.password and not self.username:
            raise InvalidSetting(f"{ENV_PASSWORD} is set without {ENV_USER}: set both")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Credentials:
        return cls(
            environ.get(ENV_USER) or None,
            environ.get(ENV_PASSWORD) or None,
            environ.get(ENV_TOKEN) or None,
        )

    @property
    def required(self) -> bool:
        return bool(self.username or self.token)

    def accept(self, header: str) -> bool:
        """Whether an `Authorization` header value (as received) presents these credentials."""
        scheme, _, given = header.strip().partition(" ")
        scheme = scheme.lower()
        presented = given.strip().encode("latin-1", errors="replace")  # HTTP headers' bytes
        if scheme == "bearer" and self.token:
            return hmac.compare_digest(presented, self.token.encode())
        if scheme == "basic" and self.username and self.password:
            try:
                decoded = base64.b64decode(presented, validate=True)
            except (binascii.Error, ValueError):
                return False
            expected = f"{self.username}:{self.password}".encode()
            return hmac.compare_digest(decoded, expected)
        return False


class RequireCredentials(BaseHTTPMiddleware):
    """401 (with a basic-auth challenge when a user is configured) unless `accept`ed."""

    def __init__(self, app: Any, credentials: Credentials) -> None:
        super().__init__(app)
        self._credentials = credentials

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if self._credentials.accept(request.headers.get("authorization", "")):
            return await call_next(request)
        headers = (
            {"WWW-Authenticate": 'Basic realm="jobcorr"'} if self._credentials.username else {}
        )
        return JSONResponse({"error": "credentials required"}, status_code=401, headers=headers)
