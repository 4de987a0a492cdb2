"""ClickHouse's HTTP interface served by chdb (the ClickHouse engine), for tests.

    python tests/chdb_http.py --port 8123 --path DIR

A real ClickHouse engine behind the protocol clickhouse-connect speaks: the query comes in
the `query` parameter and/or the body, settings as parameters, inserts as a body in the
named format (lz4 or gzip per `Content-Encoding`, possibly chunked), results in the format
the query names, errors as HTTP 500 with `X-ClickHouse-Exception-Code`, and a second
request in a `session_id` still in use refused as ClickHouse refuses it (SESSION_IS_LOCKED).
It is a test fixture, not a server: one statement at a time, no authentication, loopback
only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import chdb
import lz4.frame

INSERT = re.compile(
    rb"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<format>\w+)[ \t]*\r?\n?", re.I | re.S
)
"""An insert: the statement, then its data (in the body after it, or the whole body when
the statement came in the `query` parameter)."""
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
ERROR_CODE = re.compile(r"Code: (\d+)")
DEFAULT_FORMAT = "TabSeparated"  # ClickHouse's HTTP default
PASSED_ON = {"database", "default_format", "query", "query_id", "session_id", "user", "password"}
"""Parameters that are not settings."""


SESSION_IS_LOCKED = (
    "Code: 373. DB::Exception: Session {} is locked by a concurrent client. (SESSION_IS_LOCKED)"
)


class Engine:
    """One chdb session under `path`, used by one request at a time."""

    def __init__(self, path: Path) -> None:
        self.conn = chdb.connect(str(path))  # type: ignore[no-untyped-call]
        self.lock = threading.Lock()
        self.spool = Path(tempfile.mkdtemp(prefix="chdb-http-"))
        self.sessions: set[str] = set()
        self.sessions_lock = threading.Lock()

    @contextmanager
    def session(self, session_id: str | None) -> Iterator[None]:
        """Hold `session_id` for one request, as ClickHouse does; refuse a concurrent one."""
        if session_id is None:
            yield
            return
        with self.sessions_lock:
            if session_id in self.sessions:
                raise RuntimeError(SESSION_IS_LOCKED.format(session_id))
            self.sessions.add(session_id)
        try:
            yield
        finally:
            with self.sessions_lock:
                self.sessions.discard(session_id)

    def run(self, sql: str, fmt: str, database: str | None) -> bytes:
        with self.lock:
            self.conn.query(f"USE {database or 'default'}")
            result = self.conn.query(sql, fmt)
            return bytes(result.bytes()) if result is not None else b""

    def insert(self, target: str, fmt: str, body: bytes, database: str | None) -> None:
        """`INSERT INTO target FORMAT fmt` + body, through a file: binary formats such as
        Native cannot ride inside the query text."""
        path = self.spool / f"{uuid.uuid4().hex}.{fmt.lower()}"
        path.write_bytes(body)
        try:
            self.run(f"INSERT INTO {target} SELECT * FROM file('{path}', '{fmt}')", "CSV",
                     database)  # fmt: skip
        finally:
            path.unlink()


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "lz4":
        return bytes(lz4.frame.decompress(body))
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise ValueError(f"Content-Encoding {encoding!r} is not supported by this fixture")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: Engine

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return _decode(raw, self.headers.get("Content-Encoding", "").lower())

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        self._handle(self._body())

    def _handle(self, body: bytes) -> None:
        params = {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}
        query = params.get("query", "")
        common = {"X-ClickHouse-Server-Display-Name": "chdb-http", "X-ClickHouse-Timezone": "UTC",
                  "X-ClickHouse-Query-Id": params.get("query_id", uuid.uuid4().hex)}  # fmt: skip
        if not query and not body:
            self._reply(200, b"Ok.\n", common)  # ClickHouse's ping
            return
        try:
            with self.engine.session(params.get("session_id")):
                result, headers = self._execute(params, query, body)
        except Exception as error:  # chdb's errors are RuntimeErrors carrying ClickHouse's text
            text = str(error).strip()
            code = ERROR_CODE.search(text)
            failed = {**common, "X-ClickHouse-Exception-Code": code.group(1) if code else "1000"}
            self._reply(500, f"{text}\n".encode(), failed)
            return
        self._reply(200, result, {**common, **headers})

    def _execute(
        self, params: dict[str, str], query: str, body: bytes
    ) -> tuple[bytes, dict[str, str]]:
        """Run one request's statement: the result and the response headers it adds."""
        database = params.get("database")
        statement = f"{query}\n".encode() + body if query else body
        insert = INSERT.match(statement)
        if insert:
            target, fmt = insert["target"].decode(), insert["format"].decode()
            self.engine.insert(target, fmt, statement[insert.end() :], database)
            return b"", {"X-ClickHouse-Summary": json.dumps({"written_rows": "0"})}
        sql = statement.decode()
        named = FORMAT_CLAUSE.search(sql)
        fmt = named.group(1) if named else params.get("default_format", DEFAULT_FORMAT)
        if named:
            sql = sql[: named.start()]
        result = self.engine.run(sql, fmt, database)
        return result, {"X-ClickHouse-Format": fmt, "Content-Type": "application/octet-stream"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", type=Path, required=True)
    args = parser.parse_args()
    Handler.engine = Engine(args.path)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
