"""The `jobcorr` command line.

jobcorr check http://127.0.0.1:8080/metrics --require-job clickhouse_sync
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from jobcorr.check import FamilyReport, check_url
from jobcorr.contract import METRICS
from jobcorr.errors import JobcorrError
from jobcorr.extras import require
from jobcorr.params import flag_type, parse_port
from jobcorr.terminal import printable
from jobcorr.times import AT_FORMS, format_local, parse_at, parse_duration

if TYPE_CHECKING:  # the explain extra; imported by the commands that use it
    from rich.console import Console

    from jobcorr.analysis import Candidate
    from jobcorr.contract import Metric
    from jobcorr.timeline import Timeline

EXIT_OK, EXIT_WRONG, EXIT_UNREADABLE = 0, 1, 2


class UsageError(JobcorrError):
    """A command cannot do what it was asked; the message says what to pass instead."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line saying what to do (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_UNREADABLE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    """A positive number of seconds (`--timeout`)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _pid(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a process id")
    return int(text)


def _cells(*cells: str) -> list[str]:
    return [printable(cell) for cell in cells]


def _check(args: argparse.Namespace) -> int:
    reports = check_url(args.url, timeout=args.timeout, require_jobs=args.require_job)
    if args.json:
        print(json.dumps([_report_json(r) for r in reports], indent=2))
    else:
        _print_reports(reports)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_WRONG


def _report_json(report: FamilyReport) -> dict[str, object]:
    return {
        "family": report.spec.exposed_name,
        "type": report.spec.type,
        "verdict": report.verdict,
        "detail": report.detail,
        "series": report.series,
    }


def _print_reports(reports: Sequence[FamilyReport]) -> None:
    """A plain aligned table: `check` is part of the core and needs no rich."""
    rows = [("family", "type", "labels", "verdict", "detail")]
    rows += [
        (r.spec.exposed_name, r.spec.type, ",".join(r.spec.labels), r.verdict, r.detail)
        for r in reports
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        print(printable(cells), printable(row[4]))
    wrong = sum(not r.ok for r in reports)
    print(f"{len(reports) - wrong} of {len(reports)} families as the contract says.")


def _console() -> Console:
    require("explain", "rich")
    from rich.console import Console

    # markup and emoji off: names and label values from data print as themselves
    console = Console(highlight=False, markup=False, emoji=False)
    if not console.is_terminal:  # piped or captured: keep table rows on one line each
        console = Console(highlight=False, markup=False, emoji=False, width=200)
    return console


def _export(args: argparse.Namespace) -> int:
    from jobcorr.artifacts import ARTIFACTS, load_description, write_all
    from jobcorr.artifacts.description import with_export_options
    from jobcorr.artifacts.export import stale

    console = _console()
    if args.kind not in ("all", *ARTIFACTS):
        raise UsageError(f"no artifact {args.kind!r}: all, {', '.join(ARTIFACTS)}")
    try:
        description = with_export_options(
            load_description(args.description),
            monitor_labels=args.monitor_label,
            explain_url=args.explain_url,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    kinds = None if args.kind == "all" else [args.kind]
    if args.check:
        outdated = stale(description, args.out)
        for relative in outdated:
            console.print(f"out of date: {printable(args.out / relative)}", style="red")
        if outdated:
            console.print("run `jobcorr export all --out DIR` and commit the result")
        return EXIT_WRONG if outdated else EXIT_OK
    try:
        for path in write_all(description, args.out, kinds):
            console.print(f"wrote {printable(path)}")
    except OSError as error:
        raise UsageError(
            f"cannot write {error.filename or args.out}: {error.strerror}; pass a writable --out"
        ) from None
    return EXIT_OK


DEFAULT_SOURCE = "embedded:data/jobcorr.sqlite3"


def _open(args: argparse.Namespace) -> Timeline:
    from jobcorr.sources import open_source

    return open_source(
        args.source,
        username=args.username,
        password=os.environ.get("JOBCORR_PROMETHEUS_PASSWORD"),
        token=os.environ.get("JOBCORR_PROMETHEUS_TOKEN"),
        match=args.match,
    )


def _explain(args: argparse.Namespace) -> int:
    from jobcorr.analysis import explain, narrative
    from jobcorr.analysis.report import explanation_to_dict

    console = _console()
    from rich.table import Table

    at = parse_at(args.at, now=time.time())
    window = parse_duration(args.window)
    history = parse_duration(args.history)
    with _open(args) as timeline:
        explanation = explain(timeline, at, window=window, metric=args.metric, history=history)
    if args.png:
        from jobcorr.web.app import dashboard_app
        from jobcorr.web.png import render_report_png

        query = {"at": str(at), "window": args.window, "metric": args.metric}
        app = dashboard_app(lambda: _open(args))
        try:
            render_report_png(app, query, args.png)
        finally:
            app.state.sources.close()
    if args.json:
        print(json.dumps(explanation_to_dict(explanation), indent=2))
        return EXIT_OK
    console.print(printable(explanation.conclusion))
    spike = explanation.spike
    if spike is not None:
        words, quantity = narrative.METRIC_WORDS[spike.metric], narrative.quantity
        console.print(
            printable(
                f"{words} rose from {quantity(spike.metric, spike.baseline)} at "
                f"{format_local(spike.rise_start)} to {quantity(spike.metric, spike.peak)} at "
                f"{format_local(spike.peak_at)} ({spike.reason})"
            ),
            style="dim",
        )
    if explanation.candidates:
        table = Table(title="evidence")
        for column in ("job", "confidence", "climb covered", "onset", "history", "owned",
                       "a run adds", "volume fit", "runs in the spike", "processed"):  # fmt: skip
            table.add_column(column)
        for candidate in explanation.candidates:
            table.add_row(*_cells(*_evidence_row(candidate, explanation.metric)))
        console.print(table)
    return EXIT_OK


def _evidence_row(candidate: Candidate, metric: Metric) -> list[str]:
    from jobcorr.analysis import narrative

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    fit = candidate.fit
    history = candidate.agreement if candidate.agreement is not None else candidate.lift
    return [
        candidate.job,
        f"{candidate.confidence:.2f}",
        f"{candidate.coverage:.0%}",
        share(candidate.onset),
        share(history),
        share(candidate.owned),
        "-" if candidate.typical_rise is None
        else narrative.quantity(metric, candidate.typical_rise),
        "-" if fit is None
        else f"{narrative.quantity(metric, fit.per_unit)}/{fit.volume}, "
        f"R² {fit.r2:.2f} over {candidate.past_runs} runs",
        ", ".join(r.run_id for r in candidate.runs),
        narrative.volumes_text(candidate.volumes) or "-",
    ]  # fmt: skip


def _dashboard(args: argparse.Namespace) -> int:
    require("dashboard", "starlette", "uvicorn")  # before the explain modules it also needs
    from jobcorr.web.app import dashboard_app
    from jobcorr.web.auth import Credentials
    from jobcorr.web.process import exit_with_parent
    from jobcorr.web.server import check_bindable, serve_forever

    if args.parent_pid is not None and not exit_with_parent(args.parent_pid):
        raise UsageError(
            f"--parent-pid {args.parent_pid} is not this process's parent (has it ended?); "
            "pass the pid of the process that starts this one, or leave it out"
        )
    console = _console()
    credentials = Credentials.from_env(os.environ)  # refused now if a password is missing
    _open(args).close()  # fail now, with the reason, rather than on the first page load
    check_bindable(args.host, args.port)
    app = dashboard_app(lambda: _open(args), credentials=credentials)
    console.print(f"dashboard on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    serve_forever(app, args.host, args.port)
    return EXIT_OK


def _spikes(args: argparse.Namespace) -> int:
    from jobcorr.analysis import narrative, survey
    from jobcorr.analysis.report import survey_to_dict

    console = _console()
    from rich.table import Table

    since = parse_duration(args.since)
    now = time.time()
    with _open(args) as timeline:
        surveyed = survey(timeline, now - since, now, metric=args.metric)
    if args.json:
        print(json.dumps(survey_to_dict(surveyed), indent=2))
        return EXIT_OK
    words = narrative.METRIC_WORDS[args.metric]
    if not surveyed:
        console.print(f"No {words} spikes in the last {printable(args.since)}.")
        return EXIT_OK
    table = Table(title=f"{words} spikes, last {printable(args.since)}")
    for column in ("peak at", "peak", "baseline", "why", "top job", "confidence"):
        table.add_column(column)
    for item in surveyed:
        spike = item.spike
        table.add_row(
            *_cells(
                format_local(spike.peak_at),
                narrative.quantity(spike.metric, spike.peak),
                narrative.quantity(spike.metric, spike.baseline),
                spike.reason,
                item.top.job if item.top else narrative.VERDICT_WORDS[item.verdict],
                f"{item.top.confidence:.2f}" if item.top else "-",
            )
        )
    console.print(table)
    return EXIT_OK


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default=os.environ.get("JOBCORR_SOURCE", DEFAULT_SOURCE),
        help="embedded:PATH (the recorder's store) or prometheus:URL "
        f"(env JOBCORR_SOURCE, default {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--match",
        metavar="MATCHERS",
        help="prometheus: label matchers selecting one service, "
        'e.g. \'{namespace="default",pod=~"bf42-stats.*"}\'',
    )
    parser.add_argument(
        "--username",
        help="prometheus: basic auth user (password from env JOBCORR_PROMETHEUS_PASSWORD; "
        "a bearer token from env JOBCORR_PROMETHEUS_TOKEN)",
    )


def _add_answer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metric", choices=METRICS, default="memory", help="what spiked (default memory)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (schema in the README)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    check.add_argument("--timeout", type=_seconds, default=10.0, help="seconds (default 10)")
    check.add_argument("--json", action="store_true", help="print the reports as JSON")
    check.set_defaults(handler=_check)

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
    export.add_argument(
        "kind", help="what to generate: all, grafana, rules, kubernetes or scrape-config"
    )
    export.add_argument("--out", type=Path, required=True, help="output directory, e.g. deploy/")
    export.add_argument(
        "--description", metavar="MODULE:ATTRIBUTE", help="e.g. bf42stats.deploy:DESCRIPTION"
    )
    export.add_argument(
        "--monitor-label",
        action="append",
        metavar="KEY=VALUE",
        help="a label for the ServiceMonitor and PrometheusRule, for the Prometheus that "
        "selects them (repeatable; default release=kube-prometheus-stack; --monitor-label "
        "none for none)",
    )
    export.add_argument(
        "--explain-url",
        metavar="URL",
        help='where `jobcorr dashboard` answers, for Grafana\'s "Explain this moment" links '
        "(default http://127.0.0.1:8090)",
    )
    export.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any file under --out differs from what would be written",
    )
    export.set_defaults(handler=_export)

    explain = commands.add_parser(
        "explain",
        help="which job was running when a metric spiked, and what it was doing",
        description=(
            "Find the spike nearest --at and name the job behind it, with the evidence: which "
            "runs covered the climb, how the metric moves with each job's runs over the history, "
            "and what the runs processed. Times print in the local zone with their offset."
        ),
        epilog='examples: jobcorr explain --at -15m | jobcorr explain --at "2026-11-28 14:23" '
        "--window 10m --metric cpu --json",
    )
    explain.add_argument("--at", required=True, help=f"the moment: {AT_FORMS}")
    explain.add_argument(
        "--window", default="5m", help="look this far either side of --at (10s, 5m, 1h; default 5m)"
    )
    explain.add_argument(
        "--history",
        default="24h",
        help="how much earlier data to learn each job's usual effect from (default 24h)",
    )
    explain.add_argument(
        "--png",
        type=Path,
        metavar="FILE",
        help="also save the stacked panels around the spike, with the explanation, as a PNG "
        "(needs Chromium)",
    )
    _add_source_arguments(explain)
    _add_answer_arguments(explain)
    explain.set_defaults(handler=_explain)

    spikes = commands.add_parser(
        "spikes",
        help="list recent spikes with the job most likely behind each",
        description="List the spikes of a metric over a recent period, each with its top job.",
        epilog="example: jobcorr spikes --since 24h --metric memory",
    )
    spikes.add_argument("--since", default="24h", help="how far back (30m, 24h, 7d; default 24h)")
    _add_source_arguments(spikes)
    _add_answer_arguments(spikes)
    spikes.set_defaults(handler=_spikes)

    dashboard = commands.add_parser(
        "dashboard",
        help="serve the embedded dashboard over a source",
        description="Serve the dashboard page and its JSON API (read-only) over a source. "
        "Set JOBCORR_DASHBOARD_TOKEN, or JOBCORR_DASHBOARD_USER and JOBCORR_DASHBOARD_PASSWORD, "
        "to require credentials (do, when binding beyond loopback).",
        epilog="example: jobcorr dashboard --source embedded:data/jobcorr.sqlite3 --port 8090",
    )
    dashboard.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    dashboard.add_argument(
        "--port", type=flag_type(parse_port), default=8090, help="port (default 8090)"
    )
    dashboard.add_argument(
        "--parent-pid",
        type=_pid,
        metavar="PID",
        help="end when this process's parent, PID, ends, even by kill -9 (how a service runs "
        "its dashboard: jobcorr.web.process.DashboardProcess)",
    )
    _add_source_arguments(dashboard)
    dashboard.set_defaults(handler=_dashboard)
    return parser


_TAKES_NEGATIVE = ("--at", "--since", "--window", "--history", "--timeout", "--port")


def _attach_negative_values(argv: Sequence[str]) -> list[str]:
    """`--at -15m` as `--at=-15m`: argparse would read "-15m" as an option (and a negative
    `--window` would get "expected one argument" instead of what is wrong with it)."""
    result: list[str] = []
    for token in argv:
        if result and result[-1] in _TAKES_NEGATIVE and token.startswith("-"):
            result[-1] = f"{result[-1]}={token}"
        else:
            result.append(token)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(
        _attach_negative_values(sys.argv[1:] if argv is None else argv)
    )
    try:
        return int(args.handler(args))
    except JobcorrError as error:
        return _fail(args.command, str(error))
    except sqlite3.Error as error:
        damaged = f"the store cannot be read ({error}): is it damaged? Point --source at "
        return _fail(args.command, damaged + "another store, or restore this one")
    except OSError as error:
        return _fail(args.command, f"{error}; check the path and its permissions")
    except KeyboardInterrupt:
        return EXIT_WRONG


def _fail(command: str, message: str) -> int:
    """One line on stderr saying what went wrong and what to do."""
    line = " ".join(printable(message).split())
    print(f"jobcorr {command}: error: {line}", file=sys.stderr)
    return EXIT_UNREADABLE


if __name__ == "__main__":
    sys.exit(main())
