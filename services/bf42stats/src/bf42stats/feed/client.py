"""A BFList v2 client: all servers of a game, page by page, entries validated one by one."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from bf42stats.feed.models import PageEnvelope, Server, parse_server

PER_PAGE = 100
MAX_PAGES = 50


class FeedError(Exception):
    """The feed could not be read (HTTP error, timeout, or a page that is not a page)."""


@dataclass
class GameSnapshot:
    """Every valid server of one game in one poll, and what was rejected, by reason."""

    game: str
    servers: list[Server] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    pages: int = 0


class FeedClient:
    """Reads `GET {base}/v2/{game}/servers?perPage=100[&cursor=..][&after=ip:port]`.

    Follows `cursor` while `hasMore`, up to 50 pages, passing the last server's address as
    `after` like the original service. A server seen twice (pages shifting under us) is
    kept once.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def fetch_game(self, game: str) -> GameSnapshot:
        snapshot = GameSnapshot(game)
        seen: set[str] = set()
        params: dict[str, str | int] = {"perPage": PER_PAGE}
        for _ in range(MAX_PAGES):
            page = self._get_page(game, params)
            snapshot.pages += 1
            for entry in page.servers:
                server, rejected_players = parse_server(entry)
                if rejected_players:
                    snapshot.rejected["invalid_player"] += rejected_players
                if server is None:
                    snapshot.rejected["invalid_server"] += 1
                elif server.guid in seen:
                    snapshot.rejected["duplicate_server"] += 1
                else:
                    seen.add(server.guid)
                    snapshot.servers.append(server)
            if not page.hasMore or not page.cursor:
                break
            params = {"perPage": PER_PAGE, "cursor": page.cursor}
            if snapshot.servers:
                params["after"] = snapshot.servers[-1].address
        return snapshot

    def _get_page(self, game: str, params: dict[str, str | int]) -> PageEnvelope:
        try:
            response = self._http.get(f"/v2/{game}/servers", params=params)
            response.raise_for_status()
            return PageEnvelope.model_validate_json(response.content)
        except httpx.HTTPStatusError as error:
            raise FeedError(f"{game}: feed answered HTTP {error.response.status_code}") from error
        except httpx.HTTPError as error:
            raise FeedError(f"{game}: cannot reach the feed: {error!r}") from error
        except ValidationError as error:
            raise FeedError(f"{game}: malformed page: {error.errors()[0]['msg']}") from error
