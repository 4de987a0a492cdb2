"""BFList v2 page, server and player entries, validated with pydantic.

A page's envelope must be valid or the page is refused; inside it, each server and each
player is validated on its own, so one malformed entry is skipped, not the whole poll.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Player(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=64)
    score: int
    kills: int = Field(ge=0)
    deaths: int = Field(ge=0)
    ping: int = Field(ge=0)
    team: int
    teamLabel: str = ""
    aiBot: bool = False


class Server(BaseModel):
    model_config = ConfigDict(extra="ignore")

    guid: str = Field(min_length=1, max_length=128)
    ip: str = Field(min_length=1, max_length=64)
    port: int = Field(ge=0, le=65535)
    queryPort: int = Field(ge=0, le=65535)
    name: str = Field(max_length=256)
    numPlayers: int = Field(ge=0)
    maxPlayers: int = Field(ge=0)
    mapName: str
    gameType: str = ""
    gameMode: str = ""
    roundTime: int = Field(ge=0)
    roundTimeRemain: int
    tickets1: int = 0
    tickets2: int = 0
    teams: list[Any] = []
    players: list[Player] = []

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


class PageEnvelope(BaseModel):
    """The page itself; its `servers` are validated one by one with `parse_server`."""

    model_config = ConfigDict(extra="ignore")

    servers: list[dict[str, Any]]
    cursor: str | None = None
    hasMore: bool = False


def parse_server(entry: Any) -> tuple[Server | None, int]:
    """Validate one server entry; return (server or None if invalid, players rejected).

    Invalid players are dropped from the server rather than failing it.
    """
    if not isinstance(entry, dict):
        return None, 0
    raw_players = entry.get("players")
    players: list[Player] = []
    rejected_players = 0
    if isinstance(raw_players, list):
        for raw in raw_players:
            try:
                players.append(Player.model_validate(raw))
            except ValidationError:
                rejected_players += 1
    try:
        server = Server.model_validate({**entry, "players": []})
    except ValidationError:
        return None, rejected_players
    return server.model_copy(update={"players": players}), rejected_players
