"""The picture of a rollout: the share walked step by step, then the end."""

from __future__ import annotations

from pathlib import Path

from loopline.ml.rollout_plot import draw, share_over_time

STATE = {
    "id": "r1", "model": "m", "mode": "canary", "challenger": "2", "champion": "1",
    "status": "rolled_back", "steps": [5, 25, 50, 100],
    "started_at": "2026-01-01T00:00:00+00:00", "ended_at": "2026-01-01T00:03:00+00:00",
    "decisions": [
        {"time": "2026-01-01T00:01:00+00:00", "step": 0, "action": "advance",
         "challenger": {"requests": 40, "error_rate": 0.0, "p99_ms": 6.0}},
        {"time": "2026-01-01T00:03:00+00:00", "step": 1, "action": "rollback",
         "challenger": {"requests": 45, "error_rate": 0.11, "p99_ms": 6.5},
         "metric": {"outcome": "brier", "difference": 0.01, "p_value": 0.4}},
    ],
    "looks": [{"time": f"2026-01-01T00:0{m}:00+00:00", "challenger": {"error_rate": e},
               "champion": {"p99_ms": 5.0},
               "gates": [{"gate": "error_rate", "limit": 0.05}]}
              for m, e in ((1, 0.0), (2, 0.04), (3, 0.11))],
}


def test_the_share_walks_the_steps_and_drops_to_zero_on_rollback() -> None:
    shares = [share for _, share in share_over_time(STATE)]
    assert shares == [5.0, 25.0, 0.0]


def test_a_promotion_ends_at_all_traffic() -> None:
    promoted = {**STATE, "decisions": [{**STATE["decisions"][0]},  # type: ignore[dict-item]
                                       {"time": "2026-01-01T00:03:00+00:00", "step": 1,
                                        "action": "promote"}]}
    assert [share for _, share in share_over_time(promoted)][-1] == 100.0


def test_the_picture_is_a_png(tmp_path: Path) -> None:
    target = tmp_path / "r1.png.tmp"  # drawn under a staging name, as write_whole does
    draw(STATE, target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 20_000
