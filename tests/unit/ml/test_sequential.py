"""The rollout's comparison under peeking: seeded simulated rollouts looked at after every
step (5 %, 25 %, 50 %, 100 % of traffic), labels drawn as Bernoulli outcomes per request."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loopline.ml.sequential import Arm, compare, mixture_likelihood_ratio

STEPS = (0.05, 0.25, 0.50, 1.00)
PER_STEP = 4000  # labelled requests per step, both versions together


def _rollout(rng: np.random.Generator, champion: float, challenger: float,
             rule: str = "msprt") -> str:
    """Walk the steps; the first decision stops the rollout, as the controller would."""
    counts = {"champion": [0, 0], "challenger": [0, 0]}  # successes, n
    p = 1.0
    for share in STEPS:
        for arm, rate, n in (("champion", champion, round(PER_STEP * (1 - share))),
                             ("challenger", challenger, round(PER_STEP * share))):
            counts[arm][0] += int(rng.binomial(n, rate))
            counts[arm][1] += n
        a, b = (Arm.of_rate(*counts[arm]) for arm in ("champion", "challenger"))
        if rule == "msprt":
            result = compare(a, b, previous_p=p)
            p = result.p_value
            if result.verdict != "undecided":
                return result.verdict
        else:  # a fixed-sample z-test read at every look: what not to do
            z = (b.mean - a.mean) / math.sqrt(a.variance / a.n + b.variance / b.n)
            if abs(z) > 1.96:
                return "better" if z > 0 else "worse"
    return "undecided"


def test_a_a_rollouts_decide_wrongly_at_most_five_percent_of_the_time() -> None:
    rng = np.random.default_rng(20261126)
    verdicts = [_rollout(rng, 0.70, 0.70) for _ in range(400)]
    wrong = sum(v != "undecided" for v in verdicts)
    assert wrong / len(verdicts) <= 0.05, wrong
    # The same data read with a fixed-sample test at every look: peeking inflates it.
    rng = np.random.default_rng(20261126)
    naive = sum(_rollout(rng, 0.70, 0.70, rule="z") != "undecided" for _ in range(400))
    assert naive > 2 * max(wrong, 4), (naive, wrong)


@pytest.mark.parametrize(("challenger", "expected"), [(0.75, "better"), (0.65, "worse")])
def test_a_real_difference_is_found_in_the_right_direction(challenger: float,
                                                           expected: str) -> None:
    rng = np.random.default_rng(7)
    verdicts = [_rollout(rng, 0.70, challenger) for _ in range(200)]
    assert verdicts.count(expected) >= 0.9 * len(verdicts), verdicts.count(expected)
    assert verdicts.count({"better": "worse", "worse": "better"}[expected]) == 0


def test_lower_is_better_flips_the_verdict_and_small_samples_decide_nothing() -> None:
    champion, slower = Arm(2000, 10.0, 4.0), Arm(2000, 12.0, 4.0)  # e.g. latency in ms
    assert compare(champion, slower, tau=1.0, higher_is_better=False).verdict == "worse"
    assert compare(champion, slower, tau=1.0).verdict == "better"
    few = compare(Arm(50, 10.0, 4.0), Arm(50, 30.0, 4.0), tau=1.0)
    assert few.verdict == "undecided" and "fewer than 100" in few.reason


def test_the_p_value_never_rises_from_one_look_to_the_next() -> None:
    first = compare(Arm(1000, 0.70, 0.21), Arm(1000, 0.73, 0.20))
    later = compare(Arm(2000, 0.70, 0.21), Arm(2000, 0.70, 0.21), previous_p=first.p_value)
    assert later.p_value == first.p_value < 1.0
    assert later.likelihood_ratio == pytest.approx(
        mixture_likelihood_ratio(0.0, 0.21 / 2000 * 2, 0.02))


def test_rates_use_the_bernoulli_variance() -> None:
    arm = Arm.of_rate(70, 100)
    assert arm.mean == 0.7 and arm.variance == pytest.approx(0.7 * 0.3 * 100 / 99)
    assert Arm.of([1.0, 0.0, 1.0, 1.0]) == Arm(4, 0.75, 0.25)
