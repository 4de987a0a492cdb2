"""The `jobcorr` command line.

jobcorr check http://127.0.0.1:8080/metrics --require-job clickhouse_sync
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jobcorr.check import EndpointUnreadable, FamilyReport, check_url

EXIT_OK, EXIT_WRONG, EXIT_UNREADABLE = 0, 1, 2


def _check(args: argparse.Namespace, console: Console) -> int:
    try:
        reports = check_url(args.url, timeout=args.timeout, require_jobs=args.require_job)
    except EndpointUnreadable as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps([_report_json(r) for r in reports], indent=2))
    else:
        _print_reports(reports, console)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_WRONG


def _report_json(report: FamilyReport) -> dict[str, object]:
    return {
        "family": report.spec.exposed_name,
        "type": report.spec.type,
        "verdict": report.verdict,
        "detail": report.detail,
        "series": report.series,
    }


def _print_reports(reports: Sequence[FamilyReport], console: Console) -> None:
    table = Table(title="metric contract")
    for column in ("family", "type", "labels", "verdict", "detail"):
        table.add_column(column)
    for report in reports:
        colour = "green" if report.ok else "red"
        table.add_row(
            report.spec.exposed_name,
            report.spec.type,
            ",".join(report.spec.labels),
            f"[{colour}]{report.verdict}[/{colour}]",
            report.detail,
        )
    console.print(table)
    wrong = sum(not r.ok for r in reports)
    console.print(f"{len(reports) - wrong} of {len(reports)} families as the contract says.")


def _export(args: argparse.Namespace, console: Console) -> int:
    from jobcorr.artifacts import load_description, write_all
    from jobcorr.artifacts.export import stale

    try:
        description = load_description(args.description)
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return EXIT_UNREADABLE
    kinds = None if args.kind == "all" else [args.kind]
    if args.check:
        outdated = stale(description, args.out)
        for relative in outdated:
            console.print(f"[red]out of date:[/red] {args.out / relative}")
        if outdated:
            console.print("run `jobcorr export all --out DIR` and commit the result")
        return EXIT_WRONG if outdated else EXIT_OK
    for path in write_all(description, args.out, kinds):
        console.print(f"wrote {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobcorr",
        description="Which background job was running when memory spiked, and what was it doing?",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="verify a /metrics endpoint against the jobcorr metric contract",
        description=(
            "Fetch a /metrics endpoint and report, family by family, whether each contract "
            "family is present with the right type and labels. Exit status: 0 all present, "
            "1 something missing or wrong, 2 the endpoint could not be read."
        ),
        epilog="example: jobcorr check http://127.0.0.1:8080/metrics --require-job ranking_calc",
    )
    check.add_argument("url", help="the endpoint, e.g. http://127.0.0.1:8080/metrics")
    check.add_argument(
        "--require-job",
        action="append",
        default=[],
        metavar="JOB",
        help="also require series for this job in every job family (repeatable)",
    )
    check.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    check.add_argument("--json", action="store_true", help="print the reports as JSON")
    check.set_defaults(handler=_check)

    from jobcorr.artifacts.export import ARTIFACTS

    export = commands.add_parser(
        "export",
        help="generate Grafana dashboards, Prometheus rules and Kubernetes manifests",
        description=(
            "Generate the fleet artifacts from one jobcorr Description: Grafana dashboards "
            "(grafana), Prometheus alert rules and their promtool tests (rules), Kubernetes "
            "manifests (kubernetes) and a plain scrape config (scrape-config)."
        ),
        epilog="example: jobcorr export all --out deploy/   (the description comes from "
        "[tool.jobcorr] description in ./pyproject.toml unless --description is given)",
    )
    export.add_argument("kind", choices=["all", *ARTIFACTS], help="what to generate")
    export.add_argument("--out", type=Path, required=True, help="output directory, e.g. deploy/")
    export.add_argument(
        "--description", metavar="MODULE:ATTRIBUTE", help="e.g. bf42stats.deploy:DESCRIPTION"
    )
    export.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any file under --out differs from what would be written",
    )
    export.set_defaults(handler=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    if not console.is_terminal:  # piped or captured: keep table rows on one line each
        console = Console(highlight=False, width=200)
    return int(args.handler(args, console))


if __name__ == "__main__":
    sys.exit(main())
