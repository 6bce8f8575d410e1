"""`ml.rollout.decide`: one look at a rollout, on prediction-log frames built here.

The A/A test runs 200 seeded rollouts of two identical versions through the same function
the controller calls, looking after every batch of traffic at every step, and counts how
often the metric test calls one of them better or worse (wrongly, since they are equal)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopline.ml import rollout as ml
from loopline.spec.rollout import RolloutSpec


def policy(**values: Any) -> RolloutSpec:
    base: dict[str, Any] = {"min_requests": 100, "min_duration": "0s", "max_duration": "1h",
                            "gates": {"metric": None}}
    return RolloutSpec.model_validate({**base, **values})


T0 = pd.Timestamp("2026-01-01", tz="UTC")


def log(n: int, version: str, route: str, rng: np.random.Generator, *, error: float = 0.0,
        latency_ms: float = 5.0, quality: float | None = None, late_rate: float = 0.3,
        at: pd.Timestamp = T0) -> pd.DataFrame:
    """`n` logged requests, exactly `error` of them failed; with `quality`, a label and a
    score right that often."""
    status = rng.permutation(np.where(np.arange(n) < round(error * n), 500, 200))
    frame = pd.DataFrame({"time": at,
                          "model_version": version, "route": route, "status": status,
                          "latency_ms": rng.gamma(4.0, latency_ms / 4.0, n),
                          "prediction": rng.random(n)})
    if quality is not None:
        label = rng.random(n) < late_rate
        right = rng.random(n) < quality
        confident = 0.5 + 0.4 * rng.random(n)
        score = np.where(right == label, confident, 1 - confident)
        frame["prediction"], frame["label"] = score, label
    return frame


def look(spec: RolloutSpec, champion: pd.DataFrame, challenger: pd.DataFrame, step: int = 0,
         age: float = 60.0, previous_p: float = 1.0,
         starts: list[pd.Timestamp] | None = None) -> ml.Decision:
    """Every row at T0, in step `step` (the earlier steps began a day apart, before it)."""
    starts = starts or [T0 - pd.Timedelta(days=step - i) for i in range(step + 1)]
    return ml.decide(spec, champion=champion, challenger=challenger, step_starts=starts,
                     champion_version="1", challenger_version="2", step_age_s=age,
                     previous_p=previous_p)


def test_ten_percent_errors_roll_back_at_the_first_step() -> None:
    rng = np.random.default_rng(1)
    decision = look(policy(), log(2000, "1", "champion", rng),
                    log(120, "2", "canary", rng, error=0.10))
    assert decision.action == "rollback"
    breached = {g["gate"] for g in decision.gates if g["breached"]}
    assert "error_rate" in breached and "errors" in decision.reason


def test_a_broken_canary_goes_before_the_sample_is_full() -> None:
    """11 failures are more than 5 % of min_requests 200 could ever hold: certain breach."""
    rng = np.random.default_rng(9)
    spec = policy(min_requests=200)
    champion = log(2000, "1", "champion", rng)
    assert look(spec, champion, log(11, "2", "canary", rng, error=1.0)).action == "rollback"
    assert look(spec, champion, log(100, "2", "canary", rng, error=0.10)).action == "wait"


def test_three_times_slower_rolls_back_on_latency_and_nothing_else() -> None:
    rng = np.random.default_rng(2)
    decision = look(policy(), log(2000, "1", "champion", rng),
                    log(150, "2", "canary", rng, latency_ms=15.0))
    assert decision.action == "rollback"
    assert {g["gate"] for g in decision.gates if g["breached"]} == {"p95_ratio", "p99_ratio"}


def test_too_few_requests_wait_and_judge_nothing() -> None:
    rng = np.random.default_rng(3)
    decision = look(policy(), log(2000, "1", "champion", rng),
                    log(99, "2", "canary", rng, error=0.04))
    assert decision.action == "wait" and "99/100 requests" in decision.reason
    assert all(g["breached"] is None for g in decision.gates)


def test_a_step_lasts_min_duration_then_advances_and_the_last_promotes() -> None:
    rng = np.random.default_rng(4)
    spec = policy(min_duration="5m")
    champion, challenger = log(2000, "1", "champion", rng), log(200, "2", "canary", rng)
    assert look(spec, champion, challenger, age=100).action == "wait"
    assert look(spec, champion, challenger, age=300).action == "advance"
    assert look(spec, champion, challenger, step=3, age=300).action == "promote"
    manual = policy(min_duration="5m", promote="manual")
    assert look(manual, champion, challenger, step=3, age=300).action == "hold"


def test_too_little_traffic_by_max_duration_rolls_back() -> None:
    rng = np.random.default_rng(5)
    decision = look(policy(max_duration="10m"), log(500, "1", "champion", rng),
                    log(20, "2", "canary", rng), age=601)
    assert decision.action == "rollback" and "too little traffic" in decision.reason


def test_promotion_waits_for_labels_when_the_metric_is_required() -> None:
    rng = np.random.default_rng(6)
    spec = policy(gates={"metric": {"min_labels": 300}}, max_duration="10m")
    champion = log(2000, "1", "champion", rng, quality=0.8)
    challenger = log(200, "2", "canary", rng, quality=0.8)
    waiting = look(spec, champion, challenger, step=3, age=60)
    assert waiting.action == "wait" and "waits for labels" in waiting.reason
    assert look(spec, champion, challenger, step=3, age=601).action == "hold"


def test_a_worse_metric_rolls_back_and_ab_promotes_only_a_better_one() -> None:
    rng = np.random.default_rng(7)
    gates = {"metric": {"min_labels": 200, "tau": 0.05}}
    champion = log(3000, "1", "champion", rng, quality=0.8)
    worse = look(policy(gates=gates), champion, log(1500, "2", "canary", rng, quality=0.6))
    assert worse.action == "rollback" and worse.metric and worse.metric["verdict"] == "worse"
    ab = policy(mode="ab", steps=[50], gates=gates)
    better = look(ab, champion, log(3000, "2", "canary", rng, quality=0.9))
    assert better.action == "promote" and better.metric["verdict"] == "better"  # type: ignore[index]
    same = look(ab, champion, log(3000, "2", "canary", rng, quality=0.8), age=4000)
    assert same.action == "rollback" and "no significant difference" in same.reason


def test_shadow_rows_are_the_challengers_and_champion_rows_are_not() -> None:
    rng = np.random.default_rng(8)
    frame = pd.concat([log(50, "1", "champion", rng), log(30, "2", "shadow", rng),
                       log(20, "2", "canary", rng)])
    assert len(ml.rows_of(frame, "2")) == 50
    assert len(ml.rows_of(frame, "1", answered=True)) == 50
    pinned = log(40, "2", "champion", rng)  # a KServe revision pinned to the canary
    assert len(ml.rows_of(pd.concat([frame, pinned]), "2")) == 90


def test_a_a_rollouts_decide_wrongly_at_most_five_percent_of_the_time() -> None:
    """200 seeded A/B rollouts of identical versions (5, 25, 50 % of traffic), looked at after
    every 100 requests, five looks per step: any 'better' or 'worse' call is wrong. The
    traffic gets harder over the rollout (both versions right 90 % of the time at first, 60 %
    at the end): the champion's requests come mostly early, the challenger's late. Compared
    over the whole rollout, 27 of 100 such rollouts called the challenger worse (measured);
    compared step by step, as `decide` does, none did."""
    gates = {"metric": {"min_labels": 100, "alpha": 0.05, "tau": 0.05}}
    steps = [5, 25, 50]
    spec = policy(mode="ab", steps=steps, min_requests=10**9, gates=gates)
    shares = [share for share in steps for _ in range(5)]
    wrong = 0
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        champion, challenger = [], []
        p, verdict = 1.0, "undecided"
        for k, share in enumerate(shares):
            at, quality = T0 + pd.Timedelta(minutes=k), 0.9 - 0.3 * k / len(shares)
            n = rng.binomial(100, share / 100)
            champion.append(log(100 - n, "1", "champion", rng, quality=quality, at=at))
            challenger.append(log(n, "2", "canary", rng, quality=quality, at=at))
            starts = [T0 + pd.Timedelta(minutes=5 * i) for i in range(k // 5 + 1)]
            decision = look(spec, pd.concat(champion), pd.concat(challenger),
                            previous_p=p, starts=starts)
            assert decision.metric is not None
            p, verdict = decision.metric["p_value"], decision.metric["verdict"]
            if verdict != "undecided":
                break
        wrong += verdict != "undecided"
    assert wrong / 200 <= 0.05, f"{wrong} of 200 A/A rollouts called a difference"
