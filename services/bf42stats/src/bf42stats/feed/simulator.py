"""A BFList v2-compatible feed for offline runs: deterministic players, rounds and surges.

The world is a pure function of (seed, time): the same seed gives the same servers,
player names, round changes and statistics, so tests can predict what the feed served.

    world = SimulatedWorld(servers=12, seed=7, surges=[Surge.parse("+2m=200")])
    world.servers("bf1942", time.time())        # the feed entries at that moment
    app = feed_app(world)                       # GET /v2/{game}/servers?perPage=..&cursor=..

Player counts follow a daily curve per server (busy evenings, quiet mornings), with a
little per-minute jitter. A surge adds players across all servers for a while, so a demo
shows a player surge turning into a bigger sync batch. `time_scale` runs the world's clock
faster than the wall clock (rounds and the daily curve; surges keep wall-clock offsets),
and `world_start` sets where it begins: a demo that begins at the same hour of the world's
day has the same players whatever the hour it is run at.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bf42stats.feed import GAMES
from jobcorr.times import parse_duration

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 24 * SECONDS_PER_HOUR
MAPS = {
    "bf1942": ("wake", "el_alamein", "stalingrad", "omaha_beach", "berlin", "midway"),
    "fh2": ("gazala", "tobruk", "st_lo_breakthrough", "sidi_rezegh", "villers_bocage"),
    "bfvietnam": ("hue", "ia_drang", "operation_hastings", "quang_tri", "khe_sanh"),
}
_NAME_PARTS = ("Sgt", "Ace", "Fox", "Wolf", "Hawk", "Tank", "Medic", "Sniper", "Ghost", "Rook")


@dataclass(frozen=True)
class Surge:
    """`players` extra players from `offset` seconds after start, for `duration` seconds."""

    offset: float
    players: int
    duration: float = 600.0

    @classmethod
    def parse(cls, text: str) -> Surge:
        """`+2m=200` (200 players two minutes from start, for 10 minutes) or `+2m=200/5m`."""
        match = re.fullmatch(r"\+([^=]+)=(\d+)(?:/(.+))?", text.strip())
        if not match:
            raise ValueError(f"surge {text!r} is not like +2m=200 or +2m=200/5m")
        duration = parse_duration(match.group(3)) if match.group(3) else 600.0
        return cls(parse_duration(match.group(1)), int(match.group(2)), duration)


@dataclass(frozen=True)
class _ServerSpec:
    index: int
    game: str
    guid: str
    ip: str
    port: int
    name: str
    max_players: int
    popularity: float
    phase: float
    round_seconds: float


def today_at(hour: int, wall: float) -> float:
    """`hour` o'clock (UTC) on the day of `wall`, as a timestamp."""
    return (wall // SECONDS_PER_DAY) * SECONDS_PER_DAY + hour * SECONDS_PER_HOUR


class SimulatedWorld:
    """The state of every simulated server as a function of time; see the module docstring."""

    def __init__(
        self,
        servers: int = 12,
        *,
        seed: int = 42,
        surges: Sequence[Surge] = (),
        start: float | None = None,
        world_start: float | None = None,
        time_scale: float = 1.0,
        round_seconds: float = 900.0,
        malformed_every: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if servers < 1:
            raise ValueError("a simulated feed needs at least one server")
        self.seed = seed
        self.surges = tuple(surges)
        self.start = clock() if start is None else start
        self.world_start = self.start if world_start is None else world_start
        self.time_scale = time_scale
        self.malformed_every = malformed_every
        self.clock = clock
        rng = random.Random(seed)
        self._specs = [
            _ServerSpec(
                index=i,
                game=GAMES[i % len(GAMES)],
                guid=f"{rng.getrandbits(64):016x}",
                ip=f"192.0.2.{10 + i}",  # TEST-NET-1: documentation addresses, never dialled
                port=14567 + i,
                name=f"[SIM] {GAMES[i % len(GAMES)]} server #{i + 1}",
                max_players=64,
                popularity=rng.uniform(0.3, 1.0),
                phase=rng.uniform(0, round_seconds),
                round_seconds=round_seconds * rng.uniform(0.8, 1.2),
            )
            for i in range(servers)
        ]

    def world_time(self, wall: float) -> float:
        return self.world_start + (wall - self.start) * self.time_scale

    def surge_players(self, wall: float) -> int:
        elapsed = wall - self.start
        return sum(s.players for s in self.surges if s.offset <= elapsed < s.offset + s.duration)

    def servers(self, game: str, wall: float | None = None) -> list[dict[str, Any]]:
        """The feed entries of `game` at wall-clock time `wall` (now), sorted by address."""
        now = self.clock() if wall is None else wall
        extra = self.surge_players(now)
        count = len(self._specs)
        return [
            self._entry(spec, now, extra // count + (spec.index < extra % count))
            for spec in self._specs
            if spec.game == game
        ]

    def _players_online(self, spec: _ServerSpec, world: float, extra: int) -> int:
        day = (world % SECONDS_PER_DAY) / SECONDS_PER_DAY
        curve = 0.45 + 0.35 * math.sin(2 * math.pi * (day - 0.375))  # peaks in the evening
        jitter = random.Random(f"{self.seed}:{spec.index}:{int(world // 60)}").randint(-2, 2)
        base = round(spec.max_players * spec.popularity * curve) + jitter
        return max(0, min(spec.max_players, base + extra))

    def _entry(self, spec: _ServerSpec, wall: float, extra: int) -> dict[str, Any]:
        world = self.world_time(wall)
        round_index, into_round = divmod(world + spec.phase, spec.round_seconds)
        maps = MAPS[spec.game]
        online = self._players_online(spec, world, extra)
        players = [self._player(spec, k, into_round) for k in range(online)]
        entry: dict[str, Any] = {
            "guid": spec.guid,
            "ip": spec.ip,
            "port": spec.port,
            "queryPort": spec.port + 8000,
            "name": spec.name,
            "numPlayers": online,
            "maxPlayers": spec.max_players,
            "mapName": maps[int(round_index + spec.index) % len(maps)],
            "gameType": "conquest",
            "gameMode": "gpm_cq",
            "roundTime": int(spec.round_seconds),
            "roundTimeRemain": int(spec.round_seconds - into_round),
            "tickets1": max(0, 300 - int(into_round / 4)),
            "tickets2": max(0, 300 - int(into_round / 5)),
            "teams": [{"index": 1, "label": "Axis"}, {"index": 2, "label": "Allies"}],
            "players": players,
        }
        if self.malformed_every:
            if (spec.index + 1) % self.malformed_every == 0:
                entry["numPlayers"] = "lots"
            for k, player in enumerate(players):
                if (k + 1) % self.malformed_every == 0:
                    player["name"] = ""
        return entry

    def _player(self, spec: _ServerSpec, k: int, into_round: float) -> dict[str, Any]:
        kill_every = 20 + (k * 7) % 40
        death_every = 25 + (k * 11) % 35
        kills = int(into_round / kill_every)
        deaths = int(into_round / death_every)
        first = _NAME_PARTS[(k + spec.index) % len(_NAME_PARTS)]
        second = _NAME_PARTS[(k // len(_NAME_PARTS)) % len(_NAME_PARTS)]
        return {
            "name": f"{first}{second}_{spec.index:02d}{k:02d}",
            "score": kills * 2 + k % 3,
            "kills": kills,
            "deaths": deaths,
            "ping": 30 + (k * 13) % 120,
            "team": 1 + k % 2,
            "teamLabel": "Axis" if k % 2 == 0 else "Allies",
            "aiBot": False,
        }


def feed_app(world: SimulatedWorld) -> Starlette:
    """A Starlette app serving `world` the way BFList v2 does."""

    async def servers(request: Request) -> JSONResponse:
        game = request.path_params["game"]
        if game not in GAMES:
            return JSONResponse({"error": f"unknown game {game!r}"}, status_code=404)
        try:
            per_page = int(request.query_params.get("perPage", "100"))
            offset = int(request.query_params.get("cursor") or 0)
        except ValueError:
            return JSONResponse({"error": "perPage and cursor must be integers"}, 400)
        if not 1 <= per_page <= 100 or offset < 0:
            return JSONResponse({"error": "perPage must be 1..100, cursor >= 0"}, 400)
        entries = world.servers(game)
        page = entries[offset : offset + per_page]
        more = offset + per_page < len(entries)
        body = {
            "servers": page,
            "cursor": str(offset + per_page) if more else None,
            "hasMore": more,
        }
        return JSONResponse(body)

    return Starlette(routes=[Route("/v2/{game}/servers", servers)])
