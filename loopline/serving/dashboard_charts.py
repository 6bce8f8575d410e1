"""The dashboard's charts: matplotlib figures inlined as base64 PNG `data:` URIs, so the page
needs no script, font or network to show them (a file opened years later still draws)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 6.0, 2.5, 100
COLOURS = ["#3366cc", "#dc7633", "#2e9e5b", "#8e44ad", "#c0392b", "#7f8c8d"]
SEVERITY = {"none": "#2e9e5b", "warn": "#e0a800", "retrain": "#c0392b"}


def _figure(height: float = HEIGHT) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _time_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz="UTC")
    formatter.offset_formats = ["", "%Y", "%Y-%m", "%Y-%m-%d UTC", "%Y-%m-%d UTC",
                                "%Y-%m-%d %H:%M UTC"]
    ax.xaxis.set_major_formatter(formatter)
    ax.xaxis.get_offset_text().set_fontsize(8)


def _times(index: pd.Index) -> Any:
    return index.tz_convert("UTC").tz_localize(None).to_pydatetime()


def lines(frame: pd.DataFrame, ylabel: str, percent: bool = False,
          limit: float | None = None, limit_label: str = "") -> str:
    """One line per column over time (requests/s per version, latency percentiles, ...)."""
    from datetime import timedelta

    fig, ax = _figure()
    x = _times(frame.index)
    if len(x) == 1:  # one bucket: a minute either side, not matplotlib's years
        ax.set_xlim(x[0] - timedelta(minutes=1), x[0] + timedelta(minutes=1))
    for i, column in enumerate(frame.columns):
        ax.plot(x, frame[column].to_numpy(dtype=float), label=str(column),
                color=COLOURS[i % len(COLOURS)], linewidth=1.4, marker="." if len(x) < 40
                else None, markersize=3)
    if limit is not None:
        ax.axhline(limit, color=SEVERITY["retrain"], linestyle="--", linewidth=1,
                   label=limit_label or None)
    if percent:
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=8)
    _time_axis(ax)
    if len(frame.columns) > 1 or limit is not None:
        ax.legend(fontsize=8, loc="upper left", frameon=False, ncol=4)
    return _png(fig)


def drift_bars(columns: Mapping[str, Mapping[str, Any]]) -> str:
    """One bar per feature, coloured by severity, with its warn (|) and retrain (‖) limits."""
    names = sorted(columns, key=lambda c: float(columns[c].get("score", 0)))
    fig, ax = _figure(height=max(1.6, 0.28 * len(names) + 0.8))
    y = range(len(names))
    scores = [float(columns[c].get("score", 0)) for c in names]
    ax.barh(list(y), scores, color=[SEVERITY.get(str(columns[c].get("severity")), "#999")
                                    for c in names], height=0.6)
    for i, c in enumerate(names):
        for key, colour in (("threshold", SEVERITY["warn"]),
                            ("retrain_threshold", SEVERITY["retrain"])):
            if columns[c].get(key) is not None:
                ax.plot([float(columns[c][key])] * 2, [i - 0.4, i + 0.4], color=colour,
                        linewidth=2)
    ax.set_yticks(list(y), names, fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("score (bar) · warn limit (amber) · retrain limit (red)", fontsize=8)
    return _png(fig)


def shares(values: Mapping[str, float], xlabel: str, limit: float | None = None) -> str:
    """Horizontal bars of shares (missing features per feature), with the check's limit."""
    names = list(values)[::-1]
    fig, ax = _figure(height=max(1.4, 0.28 * len(names) + 0.8))
    ax.barh(names, [values[n] for n in names], color=COLOURS[1], height=0.6)
    if limit is not None:
        ax.axvline(limit, color=SEVERITY["retrain"], linestyle="--", linewidth=1)
    from matplotlib.ticker import PercentFormatter

    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.tick_params(labelsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    return _png(fig)


def histogram(counts: np.ndarray, edges: np.ndarray, xlabel: str) -> str:
    """The prediction distribution as bars over the histogram's buckets."""
    fig, ax = _figure()
    widths = edges[1:] - edges[:-1]
    ax.bar(edges[:-1], counts, width=widths * 0.92, align="edge", color=COLOURS[0])
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("predictions", fontsize=9)
    ax.tick_params(labelsize=8)
    return _png(fig)
