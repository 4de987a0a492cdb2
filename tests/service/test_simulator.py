"""The BFList v2-compatible simulator: deterministic, paginated, surging."""

from __future__ import annotations

import httpx
import pytest

from bf42stats.feed import GAMES
from bf42stats.feed.client import FeedClient
from bf42stats.feed.simulator import SimulatedWorld, Surge, feed_app, today_at
from jobcorr.web.server import BackgroundServer

from .conftest import START


def test_the_same_seed_gives_the_same_world_and_another_seed_does_not() -> None:
    a = SimulatedWorld(9, seed=1, start=START)
    b = SimulatedWorld(9, seed=1, start=START)
    c = SimulatedWorld(9, seed=2, start=START)
    for game in GAMES:
        assert a.servers(game, START + 1234) == b.servers(game, START + 1234)
    assert a.servers("fh2", START) != c.servers("fh2", START)


def test_a_surge_adds_its_players_for_its_duration() -> None:
    surge = Surge.parse("+2m=200/5m")
    assert surge == Surge(120, 200, 300)
    quiet = SimulatedWorld(12, seed=3, start=START)
    busy = SimulatedWorld(12, seed=3, start=START, surges=[surge])

    def online(world: SimulatedWorld, t: float) -> int:
        return sum(len(s["players"]) for g in GAMES for s in world.servers(g, t))

    assert online(busy, START + 60) == online(quiet, START + 60)
    assert online(busy, START + 180) == online(quiet, START + 180) + 200
    assert online(busy, START + 500) == online(quiet, START + 500)


def test_a_world_begun_at_the_same_hour_has_the_same_players_whatever_the_hour_now() -> None:
    def online(start: float, world_start: float | None) -> int:
        world = SimulatedWorld(12, seed=3, start=start, world_start=world_start, time_scale=10)
        return sum(len(s["players"]) for g in GAMES for s in world.servers(g, start + 90))

    evening, morning = today_at(21, START), today_at(7, START)
    assert online(evening, None) != online(morning, None)  # the daily curve, left alone
    at_three = today_at(15, START)
    assert online(evening, at_three) == online(morning, at_three)


@pytest.mark.parametrize("text", ["2m=200", "+2x=200", "+2m=lots", "+=5"])
def test_bad_surges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"surge|duration"):
        Surge.parse(text)


def test_the_feed_paginates_with_cursors_and_the_client_reads_every_page() -> None:
    world = SimulatedWorld(300, seed=5, start=START)  # 100 servers per game
    server = BackgroundServer(feed_app(world)).start()
    try:
        first = httpx.get(f"{server.url}/v2/bf1942/servers", params={"perPage": 30}).json()
        assert len(first["servers"]) == 30 and first["hasMore"] and first["cursor"] == "30"
        last = httpx.get(
            f"{server.url}/v2/bf1942/servers", params={"perPage": 30, "cursor": "90"}
        ).json()
        assert len(last["servers"]) == 10 and last["hasMore"] is False
        assert httpx.get(f"{server.url}/v2/bf1942/servers?perPage=500").status_code == 400
        assert httpx.get(f"{server.url}/v2/bf1942/servers?cursor=x").status_code == 400
        assert httpx.get(f"{server.url}/v2/quake/servers").status_code == 404

        client = FeedClient(server.url)
        snapshot = client.fetch_game("fh2")
        client.close()
        assert len(snapshot.servers) == 100
        assert snapshot.pages == 1  # perPage=100
        assert len({s.guid for s in snapshot.servers}) == 100
    finally:
        server.stop()
