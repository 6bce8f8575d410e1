"""The `alerts:` block: which events go where. Spec objects only; `integrations.alerts` sends.

A route names the environment variable that holds its webhook URL or routing key, never the
value: the variable must also be declared under the spec's `secrets:`, so pods get it from a
Kubernetes secret and the value never enters a spec, a compiled pipeline or a log.
"""

from __future__ import annotations

import fnmatch
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopline.spec.durations import Duration, duration_seconds

# Every event Loopline raises; a route's `events` are patterns over these (`monitor.*`).
EVENT_KINDS = (
    "drift.warn", "drift.retrain", "gate.failed", "step.failed", "retrain.started",
    "monitor.breached", "monitor.recovered", "rollout.rolled_back", "rollout.promoted",
)
SEVERITIES = ("info", "warning", "critical")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertRoute(_Frozen):
    """One destination and the events it wants."""

    to: str = Field(pattern="^(slack|pagerduty|webhook)$",
                    description="slack (incoming webhook), pagerduty (Events API v2) or "
                                "webhook (JSON POST).")
    secret: str = Field(
        description="Environment variable holding the webhook URL (slack, webhook) or the "
                    "routing key (pagerduty); declare it under `secrets:` too.")
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Event kinds or patterns: " + ", ".join(EVENT_KINDS) + "; `monitor.*`.")
    min_severity: str = Field("info", pattern="^(info|warning|critical)$",
                              description="Events below this severity are not sent here.")

    @field_validator("secret")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name; the value "
                             "itself never goes into a spec")
        return value

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not fnmatch.filter(EVENT_KINDS, pattern):
                raise ValueError(f"{pattern!r} matches no event; events: "
                                 + ", ".join(EVENT_KINDS))
        return value

    def wants(self, kind: str, severity: str) -> bool:
        return any(fnmatch.fnmatchcase(kind, p) for p in self.events) and \
            SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


class AlertsSpec(_Frozen):
    """Routes, and how often the same event may be repeated."""

    routes: list[AlertRoute] = Field(default_factory=list)
    throttle: Duration = Field(
        "30m", description="The same event (model, kind, key) is sent again at most this "
                           "often; a resolve is always sent.")

    @property
    def throttle_s(self) -> float:
        return duration_seconds(self.throttle)
