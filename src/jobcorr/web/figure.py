"""The dashboard as a Plotly figure (data + layout), built once here for the page and the
PNG alike: the seed's four panels stacked on one time axis (Memory; Active Background
Jobs as a timeline of runs; Job Volume; GC Activity), then CPU and log volume, with the
alert limits as lines and spikes as markers.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from jobcorr.analysis import narrative
from jobcorr.analysis.explain import SurveyedSpike
from jobcorr.analysis.spikes import THRESHOLDS
from jobcorr.contract import Metric
from jobcorr.timeline import RunSpan, Series, Timeline

PANELS: tuple[tuple[str, str], ...] = (
    ("memory", "Memory"),
    ("jobs", "Active Background Jobs"),
    ("volume", "Job Volume"),
    ("gc", "GC Activity"),
    ("cpu", "CPU (cores)"),
    ("logs", "Log volume (records/s)"),
)
"""(panel id, title), top to bottom."""
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
GAP = 0.035


def view_step(start: float, end: float) -> float | None:
    """Views longer than 6 hours read one-minute rollups; shorter ones, every sample."""
    return 60.0 if end - start > 6 * 3600 else None


def downsample(series: Series, width: int) -> Series:
    """At most ~2 points per pixel column: each bucket's minimum and maximum, in time order,
    so spikes survive the reduction."""
    n = len(series)
    if n <= 2 * width:
        return series
    size = -(-n // width)  # samples per bucket, rounded up
    padded = np.full(size * width, np.nan)
    padded[:n] = series.values
    buckets = padded.reshape(width, size)
    filled = ~np.isnan(buckets).all(axis=1)
    starts = np.arange(width)[filled] * size
    lows = starts + np.nanargmin(buckets[filled], axis=1)
    highs = starts + np.nanargmax(buckets[filled], axis=1)
    picks = np.unique(np.concatenate([lows, highs]))  # sorted: time order
    return Series(series.times[picks], series.values[picks])


def _ms(times: np.ndarray) -> list[int]:
    return [int(t * 1000) for t in times]


def _axis(index: int) -> str:
    return "y" if index == 0 else f"y{index + 1}"


def _line(
    series: Series, name: str, axis: str, unit: str, colour: str | None = None
) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "type": "scattergl" if len(series) > 2000 else "scatter",
        "mode": "lines",
        "name": html.escape(name),
        "x": _ms(series.times),
        "y": [round(float(v), 6) for v in series.values],
        "yaxis": axis,
        "xaxis": "x",
        "hovertemplate": f"%{{y:.4s}}{unit}<extra>{html.escape(name)}</extra>",
        "meta": {"panel": axis},
    }
    if colour:
        trace["line"] = {"color": colour}
    return trace


def _run_bars(
    runs: list[RunSpan], end: float, colours: dict[str, str], pixel: float
) -> list[dict[str, Any]]:
    """One bar per run on the jobs panel; runs shorter than a pixel are drawn two pixels
    wide so that they stay visible."""
    by_job: dict[str, list[RunSpan]] = {}
    for run in runs:
        by_job.setdefault(run.job, []).append(run)
    traces = []
    for job, job_runs in sorted(by_job.items()):
        for going in (False, True):
            chosen = [r for r in job_runs if (r.end is None) == going]
            if not chosen:
                continue
            traces.append({
                "type": "bar", "orientation": "h", "xaxis": "x", "yaxis": _axis(1),
                "name": html.escape(job + (" (running)" if going else "")),
                "y": [job] * len(chosen),
                "base": [int(r.start * 1000) for r in chosen],
                "x": [int(max(2 * pixel, (r.end if r.end is not None else end) - r.start) * 1000)
                      for r in chosen],
                "customdata": [[r.run_id, r.status, narrative.volumes_text(r.volumes) or "-"]
                               for r in chosen],
                "hovertemplate": "%{customdata[0]}: %{customdata[1]}, processed %{customdata[2]}"
                                 f"<extra>{html.escape(job)}</extra>",
                "marker": {"color": colours[job], "opacity": 0.45 if going else 0.9},
                "showlegend": False,
            })  # fmt: skip
    return traces


def build_figure(
    timeline: Timeline,
    start: float,
    end: float,
    *,
    width: int = 1200,
    spikes: list[SurveyedSpike] | None = None,
    title: str = "",
) -> dict[str, Any]:
    """The whole dashboard for [start, end] as Plotly JSON."""
    step = view_step(start, end)
    metrics: dict[Metric, Series] = {
        m: downsample(timeline.metric(m, start, end, step), width)
        for m in ("memory", "cpu", "logs", "gc")
    }
    runs = timeline.runs(start, end)
    jobs = sorted({run.job for run in runs})
    colours = {job: PALETTE[i % len(PALETTE)] for i, job in enumerate(jobs)}
    data: list[dict[str, Any]] = [
        _line(metrics["memory"], "memory (RSS)", _axis(0), "B"),
        *_run_bars(runs, end, colours, (end - start) / width),
        _line(metrics["gc"], "GC collections/s", _axis(3), "/s"),
        _line(metrics["cpu"], "CPU cores", _axis(4), ""),
        _line(metrics["logs"], "log records/s", _axis(5), "/s"),
    ]
    for volume in timeline.volumes(start, end, step):
        series = volume.series.rate() if volume.kind == "counter" else volume.series
        if len(series) == 0 or not np.any(series.values):
            continue
        if volume.kind == "counter":
            data.append(_line(downsample(series, width), f"{volume.title}/s", "y7", "/s"))
        else:
            data.append(_line(downsample(series, width), volume.title, _axis(2), ""))

    count = len(PANELS)
    height = (1 - GAP * (count - 1)) / count
    layout: dict[str, Any] = {
        "hovermode": "x",
        "hoversubplots": "axis",
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.04},
        "margin": {"l": 130, "r": 60, "t": 50 if title else 20, "b": 40},
        "xaxis": {"type": "date", "range": [int(start * 1000), int(end * 1000)],
                  "showspikes": True, "spikemode": "across", "spikesnap": "cursor",
                  "spikethickness": 1, "spikedash": "dot", "anchor": _axis(count - 1)},
        "barmode": "overlay",
        "shapes": [],
        "annotations": [],
        "uirevision": "dashboard",
    }  # fmt: skip
    if title:
        layout["title"] = {"text": html.escape(title), "x": 0.01, "font": {"size": 14}}
    for index, (panel, panel_title) in enumerate(PANELS):
        top = 1 - index * (height + GAP)
        axis: dict[str, Any] = {"domain": [top - height, top], "fixedrange": True,
                                "rangemode": "tozero", "automargin": True}  # fmt: skip
        if panel == "memory":
            axis["ticksuffix"] = "B"
        if panel == "jobs":
            axis.update(type="category", categoryorder="array", categoryarray=jobs, rangemode=None)
        layout["yaxis" if index == 0 else f"yaxis{index + 1}"] = axis
        layout["annotations"].append({
            "text": f"<b>{panel_title}</b>", "xref": "paper", "yref": "paper", "x": 0,
            "y": top, "xanchor": "left", "yanchor": "bottom", "showarrow": False,
            "font": {"size": 12},
        })  # fmt: skip
    layout["yaxis7"] = {"overlaying": "y3", "side": "right", "fixedrange": True,
                        "domain": layout["yaxis3"]["domain"], "anchor": "x",
                        "rangemode": "tozero", "title": {"text": "per second"}}  # fmt: skip
    _threshold(layout, "memory", 0, metrics["memory"])
    _threshold(layout, "cpu", 4, metrics["cpu"])
    data += _spike_markers(spikes or [])
    return {"data": data, "layout": layout}


def _spike_markers(spikes: list[SurveyedSpike]) -> list[dict[str, Any]]:
    """One marker trace per panel with spikes, so hovering picks the nearest spike."""
    panels = {"memory": 0, "gc": 3, "cpu": 4, "logs": 5}
    traces = []
    for metric, panel in panels.items():
        mine = [item for item in spikes if item.spike.metric == metric]
        if not mine:
            continue
        traces.append({
            "type": "scatter", "mode": "markers", "xaxis": "x", "yaxis": _axis(panel),
            "name": f"{metric} spikes", "showlegend": False,
            "x": [int(item.spike.peak_at * 1000) for item in mine],
            "y": [item.spike.peak for item in mine],
            "marker": {"symbol": "triangle-down", "size": 14, "color": "#d62728"},
            "customdata": [[metric, item.spike.peak_at,
                            html.escape(item.top.job if item.top else "no job running")]
                           for item in mine],
            "hovertemplate": "spike: %{customdata[2]}<extra>click to explain</extra>",
            "meta": {"spike": True},
        })  # fmt: skip
    return traces


def _threshold(layout: dict[str, Any], metric: Metric, panel: int, series: Series) -> None:
    limit = THRESHOLDS[metric]
    if limit is None:
        return
    peak = float(series.values.max()) if len(series) else 0.0
    axis = layout["yaxis" if panel == 0 else f"yaxis{panel + 1}"]
    axis["range"] = (
        [0, max(peak * 1.15, limit * 1.1)] if peak > limit / 2 else [0, max(peak * 1.15, 1e-9)]
    )
    text = f"limit {narrative.quantity(metric, limit)}"
    if peak > limit / 2:
        layout["shapes"].append({
            "type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": _axis(panel),
            "y0": limit, "y1": limit, "line": {"color": "#d62728", "dash": "dash", "width": 1},
        })  # fmt: skip
    else:
        text += " (above this scale)"
    layout["annotations"].append({
        "text": text, "xref": "paper", "yref": f"{_axis(panel)} domain", "x": 1, "y": 1,
        "xanchor": "right", "yanchor": "top", "showarrow": False,
        "font": {"size": 10, "color": "#d62728"},
    })  # fmt: skip
