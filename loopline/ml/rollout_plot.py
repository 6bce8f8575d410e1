"""A rollout as a picture: the challenger's share of traffic over time, each decision marked
with the figures it was based on, and the gate figures of every look underneath."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

COLOURS = {"advance": "#2b8a3e", "promote": "#1971c2", "rollback": "#c92a2a",
           "hold": "#e67700", "wait": "#868e96"}


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def share_over_time(state: dict[str, Any]) -> list[tuple[datetime, float]]:
    """(time, % on the challenger) at each change: the steps as walked, then the end."""
    points = [(_t(state["started_at"]), float(state["steps"][0]))]
    for decision in state.get("decisions") or []:
        action, moment = decision.get("action"), _t(decision["time"])
        if action == "advance":
            points.append((moment, float(state["steps"][int(decision["step"]) + 1])))
        elif action == "rollback":
            points.append((moment, 0.0))
        elif action == "promote":
            points.append((moment, 100.0))
    return points


def draw(state: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = share_over_time(state)
    end = _t(state["ended_at"]) if state.get("ended_at") else \
        max([points[-1][0], *(_t(look["time"]) for look in state.get("looks") or [])])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    times, shares = zip(*[*points, (end, points[-1][1])], strict=True)
    top.step(times, shares, where="post", color="#1971c2", linewidth=2)
    top.fill_between(times, shares, step="post", alpha=0.15, color="#1971c2")
    for i, decision in enumerate(state.get("decisions") or []):
        moment = _t(decision["time"])
        action = decision.get("action", "")
        chall = decision.get("challenger") or {}
        label = f"{action}{' (manual)' if decision.get('manual') else ''}\n" \
                f"{chall.get('requests', 0)} req, err {_pct(chall.get('error_rate'))}\n" \
                f"p99 {_num(chall.get('p99_ms'))} ms"
        if (metric := decision.get("metric")) and (metric.get("p_value") or 1.0) < 1.0:
            label += f"\n{metric['outcome']} {metric['difference']:+.3f} p={metric['p_value']:.3f}"
        top.axvline(moment, color=COLOURS.get(action, "#868e96"), linestyle="--", linewidth=1)
        top.annotate(label, (moment, 80 if i % 2 == 0 else 35), fontsize=7, ha="right",
                     va="center",
                     color=COLOURS.get(action, "#495057"))
    top.set_ylim(-3, 105)
    top.set_ylabel("% of traffic on the challenger")
    top.set_title(f"{state.get('model')} rollout {state.get('id')}: {state.get('mode')} "
                  f"v{state.get('challenger')} vs v{state.get('champion')} -> "
                  f"{str(state.get('status')).replace('_', ' ')}", fontsize=10)
    looks = [look for look in state.get("looks") or [] if look.get("time")]
    moments = [_t(look["time"]) for look in looks]
    errors = [100 * ((look.get("challenger") or {}).get("error_rate") or 0) for look in looks]
    ratios = [_ratio(look) for look in looks]
    bottom.plot(moments, errors, marker=".", color="#c92a2a", label="challenger errors (%)")
    error_limit, ratio_limit = _limit(looks, "error_rate"), _limit(looks, "p99_ratio")
    if error_limit is not None:
        bottom.axhline(100 * error_limit, color="#c92a2a", linestyle=":", linewidth=1)
    bottom.set_ylim(0, max([5.0, *errors, 100 * (error_limit or 0)]) * 1.15)
    bottom.set_ylabel("errors (%)")
    twin = bottom.twinx()
    twin.plot(moments, ratios, marker=".", color="#5f3dc4", label="p99 / champion p99")
    if ratio_limit is not None:
        twin.axhline(ratio_limit, color="#5f3dc4", linestyle=":", linewidth=1)
    twin.set_ylim(0, max([2.5, *(r for r in ratios if r is not None), ratio_limit or 0]) * 1.1)
    twin.set_ylabel("p99 ratio (dotted: the gates' limits)")
    bottom.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    bottom.set_xlabel("time (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def _limit(looks: list[dict[str, Any]], gate: str) -> float | None:
    for look in looks:
        for checked in look.get("gates") or []:
            if checked.get("gate") == gate and checked.get("limit") is not None:
                return float(checked["limit"])
    return None


def _ratio(look: dict[str, Any]) -> float | None:
    mine = (look.get("challenger") or {}).get("p99_ms")
    theirs = (look.get("champion") or {}).get("p99_ms")
    return mine / theirs if mine and theirs else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
