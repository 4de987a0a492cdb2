"""Run an ASGI app with uvicorn on a background thread (a feed simulator, a report page)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from jobcorr.errors import JobcorrError


def check_bindable(host: str, port: int) -> None:
    """Raise JobcorrError, saying what to do, unless `host:port` can be listened on now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as error:
        reason = error.strerror or str(error)
        raise JobcorrError(
            f"cannot listen on {host}:{port}: {reason}; pick another --port or --host"
        ) from None


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve `app` in the foreground until interrupted (the `jobcorr dashboard` command)."""
    uvicorn.run(app, host=host, port=port, log_level="warning")


class BackgroundServer:
    """`BackgroundServer(app).start()` serves on 127.0.0.1 (any free port); `.url`, `.stop()`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="jobcorr-http", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
