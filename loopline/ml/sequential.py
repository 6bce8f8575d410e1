"""Comparing a challenger with the champion while traffic is still arriving, without peeking bias.

A rollout looks at its figures at every step (5 %, 25 %, 50 %, 100 % of traffic) and may stop
at any of them. A fixed-sample test read at each look rejects far more often than its level
says (four looks at a 5 % t-test: ~13 % false alarms on identical models). The mixture
sequential probability ratio test (mSPRT; Robbins 1970, Johari et al., "Always Valid
Inference", 2017/2022) gives a p-value that stays valid however often it is read: with a
normal mixing distribution N(0, tau^2) over the true difference and the difference of means
approximately normal with variance V,

    Lambda_n = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 * V * (V + tau^2)))

and p_n = min(p_{n-1}, 1 / Lambda_n). Deciding when p_n <= alpha keeps the chance of any wrong
"better" or "worse" call, over all looks, at most alpha. `tau` is the size of difference the
test is most sensitive to; a minimum sample per arm guards the normal approximation.

Pure computation: figures in, a verdict out. The rollout controller (issue 15) feeds it the
per-request outcomes it reads from the prediction log and the labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Verdict = Literal["better", "worse", "undecided"]


@dataclass(frozen=True)
class Arm:
    """One version's outcomes so far: how many, their mean and their variance (ddof 1)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Arm:
        n = len(values)
        if isinstance(values, np.ndarray):  # a rollout's thousands of outcomes: vectorised
            return cls(n, float(values.mean()) if n else 0.0,
                       float(values.var(ddof=1)) if n > 1 else 0.0)
        mean = sum(values) / n if n else 0.0
        variance = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)

    @classmethod
    def of_rate(cls, successes: int, n: int) -> Arm:
        """A proportion (accuracy, error rate) as the mean of 0/1 outcomes."""
        p = successes / n if n else 0.0
        return cls(n, p, p * (1 - p) * n / (n - 1) if n > 1 else 0.0)


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    difference: float  # challenger mean - champion mean
    p_value: float  # always valid: min over every look so far
    likelihood_ratio: float
    reason: str


def mixture_likelihood_ratio(difference: float, variance: float, tau: float) -> float:
    """Lambda for an observed difference of means with sampling variance `variance`."""
    if variance <= 0:
        return math.inf if difference else 1.0
    t2 = tau * tau
    exponent = t2 * difference * difference / (2 * variance * (variance + t2))
    return math.sqrt(variance / (variance + t2)) * math.exp(min(exponent, 700.0))


def compare(champion: Arm, challenger: Arm, *, alpha: float = 0.05, tau: float = 0.02,
            higher_is_better: bool = True, min_samples: int = 100,
            previous_p: float = 1.0) -> Comparison:
    """One look at the figures. `previous_p` is the p-value of the last look (1.0 at the
    first), so the value returned never rises: that is what makes stopping at any look safe."""
    return compare_strata([(champion, challenger)], alpha=alpha, tau=tau,
                          higher_is_better=higher_is_better, min_samples=min_samples,
                          previous_p=previous_p)


def compare_strata(strata: Sequence[tuple[Arm, Arm]], *, alpha: float = 0.05,
                   tau: float = 0.02, higher_is_better: bool = True, min_samples: int = 100,
                   previous_p: float = 1.0) -> Comparison:
    """`compare` over strata (a rollout's steps): the difference of means within each
    stratum, weighted by its effective size, so that time is not mistaken for the version.
    A rollout's champion answers mostly early (95 % at the first step), its challenger mostly
    late; compared whole, a late-summer drop in the late-arrival rate reads as a better or
    worse model (Simpson's paradox). A stratum missing either arm adds nothing."""
    usable = [(a, b) for a, b in strata if a.n > 1 and b.n > 1]
    champions, challengers = sum(a.n for a, _ in usable), sum(b.n for _, b in usable)
    if min(champions, challengers) < min_samples or not usable:
        return Comparison("undecided", 0.0, previous_p, 1.0,
                          f"{min(champions, challengers)} samples in the smaller arm, "
                          f"fewer than {min_samples}: no decision yet")
    sizes = [1 / (1 / a.n + 1 / b.n) for a, b in usable]
    weights = [size / sum(sizes) for size in sizes]
    difference = sum(w * (b.mean - a.mean) for w, (a, b) in zip(weights, usable, strict=True))
    variance = sum(w * w * (a.variance / a.n + b.variance / b.n)
                   for w, (a, b) in zip(weights, usable, strict=True))
    ratio = mixture_likelihood_ratio(difference, variance, tau)
    p_value = min(previous_p, 1.0 / ratio)
    if p_value > alpha:
        return Comparison("undecided", difference, p_value, ratio,
                          f"difference {difference:+.4f}, always-valid p {p_value:.3f} "
                          f"> {alpha}")
    gained = difference > 0 if higher_is_better else difference < 0
    verdict: Verdict = "better" if gained else "worse"
    return Comparison(verdict, difference, p_value, ratio,
                      f"difference {difference:+.4f}, always-valid p {p_value:.4f} <= {alpha}")
