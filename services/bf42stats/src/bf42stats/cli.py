"""The `bf42-stats` command line: `serve` the service, or `simulate-feed` on its own."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

import uvicorn

import jobcorr
from bf42stats.app import Service, create_app
from bf42stats.config import (
    PORT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    ConfigError,
    add_arguments,
    load_settings,
    prepare_data_dir,
)
from bf42stats.feed.simulator import SimulatedWorld, Surge, feed_app, today_at
from jobcorr.web.server import BackgroundServer, check_bindable

DEMO_SURGE = "+20s=600/5m"
DEMO_SERVERS = 32
"""With the surge, ~1500 players a poll: the demo's ClickHouse outage leaves a backlog of
~65k player_metrics rows, enough for the whole-backlog catch-up to spike memory."""
DEMO_HOUR = 15
"""The hour of the world's day the demo begins at, the daily curve's busiest: with the
world's clock at the wall clock's hour, a demo run at 21:00 UTC had a third fewer players,
and its catch-up climbed less than the detection's floor."""


def _surge(text: str) -> Surge:
    try:
        return Surge.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--servers",
        type=POSITIVE_INT,
        default=DEMO_SERVERS,
        help=f"simulated servers (default {DEMO_SERVERS})",
    )
    parser.add_argument("--seed", type=int, default=42, help="world seed (default 42)")
    parser.add_argument(
        "--surge",
        type=_surge,
        action="append",
        default=[],
        metavar="+2m=200[/3m]",
        help="extra players from an offset after start, for a while (default 10m); repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bf42-stats",
        description="The jobcorr reference service: a Battlefield 1942 stats tracker whose "
        "four background jobs are instrumented with jobcorr.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the jobs and serve /metrics and /healthz",
        description="Run stats_collection, clickhouse_sync, ranking_calc and gamification on "
        "their intervals and serve /metrics and /healthz. Every setting is a flag or an "
        "environment variable; flags win. SIGTERM or SIGINT stops gracefully.",
        epilog="example: bf42-stats serve --demo --speed 10   (what `make run` does)",
    )
    add_arguments(serve)
    serve.add_argument(
        "--demo",
        action="store_true",
        help=f"start a simulated feed in-process and poll it (default surge {DEMO_SURGE}, "
        "world clock at --speed), with the demo's defaults: a ClickHouse outage during the "
        "surge and the whole-backlog sync, so the catch-up spikes memory",
    )
    _add_simulation_arguments(serve)
    simulate = commands.add_parser(
        "simulate-feed",
        help="serve a BFList v2-compatible simulated feed",
        description="Serve GET /v2/{game}/servers for bf1942, fh2 and bfvietnam from a "
        "deterministic simulated world: player counts on a daily curve, rounds changing "
        "maps, and surges.",
        epilog="example: bf42-stats simulate-feed --port 8081 --surge +2m=200",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    simulate.add_argument("--port", type=PORT, default=8081, help="port (default 8081)")
    simulate.add_argument(
        "--time-scale",
        type=POSITIVE_FLOAT,
        default=1.0,
        help="world seconds per wall second (default 1)",
    )
    _add_simulation_arguments(simulate)
    return parser


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args, demo=args.demo)
    prepare_data_dir(settings)
    check_bindable(settings.host, settings.port)
    if settings.dashboard_port:
        check_bindable(settings.host, settings.dashboard_port)
    feed: BackgroundServer | None = None
    if args.demo:
        world = SimulatedWorld(
            args.servers,
            seed=args.seed,
            surges=args.surge or [Surge.parse(DEMO_SURGE)],
            world_start=today_at(DEMO_HOUR, time.time()),
            time_scale=settings.speed,
        )
        feed = BackgroundServer(feed_app(world)).start()
        settings = replace(settings, feed_url=feed.url)
    jobcorr.configure_logging()
    for chatty in ("apscheduler", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    service = Service(settings)
    try:
        uvicorn.run(
            create_app(service),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=int(settings.shutdown_timeout),
        )
    finally:
        if feed is not None:
            feed.stop()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    check_bindable(args.host, args.port)
    world = SimulatedWorld(
        args.servers, seed=args.seed, surges=args.surge, time_scale=args.time_scale
    )
    uvicorn.run(feed_app(world), host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _serve(args) if args.command == "serve" else _simulate(args)
    except (ConfigError, jobcorr.JobcorrError) as error:
        print(f"bf42-stats: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
