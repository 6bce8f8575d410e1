"""Sending one alert to one destination, and keeping the destination's secret out of every
line, reason and log record while doing so.

Slack goes through Apprise (its message layout and its reading of Slack's answers); PagerDuty
and generic webhooks are a JSON POST with requests, for the reasons in their docstrings.
Every HTTP call has a 5 s timeout, and a failure is a reason to report, never an exception.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from loopline.spec.alerts import AlertRoute

TIMEOUT_S = 5.0  # every HTTP call: an alert must never hold up a step or a server for long
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
# EU accounts: https://events.eu.pagerduty.com/v2/enqueue (also: a proxy, a test receiver).
PAGERDUTY_URL_ENV = "LOOPLINE_PAGERDUTY_URL"


class Message(Protocol):
    """What a sender reads of an `alerts.Event`."""

    @property
    def kind(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def severity(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def details(self) -> dict[str, Any]: ...

    @property
    def key(self) -> str: ...

    @property
    def resolve(self) -> bool: ...

    @property
    def family(self) -> str: ...

    @property
    def dedup_key(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


class DeliveryFailed(Exception):
    """A destination refused or could not be reached; the text is safe to print."""


class Redactor:
    """Replaces secret values, and the parts of secret URLs that carry the secret (a Slack
    webhook's path, a token in a query), with `***`: libraries print URLs in pieces."""

    def __init__(self, values: Iterable[str]) -> None:
        fragments = {piece for value in values if value for piece in _fragments(value)}
        self.fragments = sorted(fragments, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for fragment in self.fragments:
            text = text.replace(fragment, "***")
        return text


def _fragments(value: str) -> Iterator[str]:
    if len(value) >= 4:
        yield value
    parts = urlsplit(value)
    if not (parts.scheme and parts.netloc):
        return
    if parts.password:
        yield parts.password
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(tail) > 1:
        yield tail
    pieces = [*parts.path.split("/"), *(v for _, v in parse_qsl(parts.query)), parts.query]
    # Path words like `services` or `enqueue` say nothing; tokens have digits or capitals.
    yield from (p for p in pieces if len(p) >= 6 and not (p.isalpha() and p.islower()))


class _Scrub(logging.Filter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), ()
        return True


class _Keep(logging.Handler):
    def __init__(self, into: list[str], redact: Redactor) -> None:
        super().__init__(logging.WARNING)
        self.into, self.redact = into, redact

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.redact(record.getMessage()))


_LOGGING = threading.Lock()


@contextlib.contextmanager
def _library_logs(redact: Redactor) -> Iterator[list[str]]:
    """While sending: Apprise's records (its DEBUG lines hold webhook URLs and routing keys)
    are kept here instead of propagating, its warnings becoming the failure reason; urllib3's
    (`POST /services/T…/B…/…`) are redacted before any handler sees them."""
    kept: list[str] = []
    apprise_log = logging.getLogger("apprise")
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    keep, scrub = _Keep(kept, redact), _Scrub(redact)
    with _LOGGING:
        propagate = apprise_log.propagate
        apprise_log.addHandler(keep)
        apprise_log.propagate = False
        urllib3_log.addFilter(scrub)
        try:
            yield kept
        finally:
            urllib3_log.removeFilter(scrub)
            apprise_log.propagate = propagate
            apprise_log.removeHandler(keep)


def _post_json(url: str, body: dict[str, Any], variable: str) -> Any:
    """POST `body`; the reason for a failure names the variable, never the URL."""
    import requests

    if not url.startswith(("https://", "http://")):
        raise DeliveryFailed(f"{variable} does not hold an http(s) URL")
    try:
        response = requests.post(url, data=json.dumps(body, default=str), timeout=TIMEOUT_S,
                                 headers={"Content-Type": "application/json"},
                                 allow_redirects=False)  # a 3xx is an answer, reported
    except requests.Timeout:
        raise DeliveryFailed(f"no answer within {TIMEOUT_S:g}s") from None
    except requests.ConnectionError:
        raise DeliveryFailed("could not connect") from None
    except requests.RequestException as exc:
        raise DeliveryFailed(type(exc).__name__) from None
    if not 200 <= response.status_code < 300:
        said = " ".join(response.text.split())[:200]
        raise DeliveryFailed(f"HTTP {response.status_code}" + (f": {said}" if said else ""))
    return response


def send_webhook(route: AlertRoute, url: str, ev: Message, environ: Mapping[str, str]) -> None:
    """A generic JSON webhook, sent with requests: Apprise's json:// posts its own fixed
    document (version, title, message, type) and reads the URL's query as its own options,
    while a receiver here wants the event's fields and figures as they are."""
    _post_json(url, ev.to_json(), route.secret)


def send_pagerduty(route: AlertRoute, routing_key: str, ev: Message,
                   environ: Mapping[str, str]) -> None:
    """PagerDuty Events API v2, sent with requests. Apprise's PagerDuty plugin (2.3) can
    trigger and resolve with a dedup key, but it requires a REST API key besides the routing
    key and sends it as an Authorization header (Events v2 authenticates by routing_key
    alone, so we would have to invent one), its dedup/resolve options are absent from the
    Apprise 1.x releases the `alerts` extra allows, and its endpoint is one of two fixed
    region URLs: neither an EU account nor a proxy could be chosen without patching it."""
    body: dict[str, Any] = {"routing_key": routing_key, "dedup_key": ev.dedup_key,
                            "event_action": "resolve" if ev.resolve else "trigger"}
    if not ev.resolve:
        body["client"] = "Loopline"
        body["payload"] = {
            "summary": ev.summary[:1024], "source": f"loopline/{ev.model}",
            "severity": ev.severity, "component": ev.model, "group": ev.family,
            "class": ev.kind, "custom_details": {"key": ev.key, **ev.details}}
    _post_json(environ.get(PAGERDUTY_URL_ENV) or PAGERDUTY_URL, body, route.secret)


def send_slack(route: AlertRoute, url: str, ev: Message, environ: Mapping[str, str]) -> None:
    """A Slack incoming webhook, through Apprise (message layout, Slack's answers)."""
    try:
        from apprise import NotifyType
        from apprise.plugins.slack import NotifySlack
    except ImportError:
        raise DeliveryFailed("Slack needs Apprise: pip install 'loopline[alerts]'") from None
    parsed = NotifySlack.parse_native_url(url)
    if not parsed:
        raise DeliveryFailed(f"{route.secret} does not hold a Slack incoming-webhook URL "
                             "(https://hooks.slack.com/services/...)")
    notifier = NotifySlack(**{**parsed, "include_image": False, "include_footer": False,
                              "cto": TIMEOUT_S, "rto": TIMEOUT_S})
    kind = NotifyType.SUCCESS if ev.resolve else {
        "info": NotifyType.INFO, "warning": NotifyType.WARNING,
        "critical": NotifyType.FAILURE}[ev.severity]
    title = f"{'Resolved' if ev.resolve else ev.severity.upper()}: {ev.kind} · {ev.model}"
    figures = "\n".join(f"{name}: {value}" for name, value in list(ev.details.items())[:12])
    if not notifier.send(body=f"{ev.summary}\n{figures}".strip(), title=title,
                         notify_type=kind):
        raise DeliveryFailed()  # the reason is in Apprise's log, which deliver() keeps


SENDERS = {"slack": send_slack, "pagerduty": send_pagerduty, "webhook": send_webhook}


def deliver(route: AlertRoute, secret: str, ev: Message, environ: Mapping[str, str],
             redact: Redactor) -> str | None:
    """None when delivered, else the reason (redacted); never raises."""
    try:
        with _library_logs(redact) as logged:
            try:
                SENDERS[route.to](route, secret, ev, environ)
            except DeliveryFailed as exc:  # Apprise tells why only in its log
                return redact(str(exc) or "; ".join(logged) or "refused")
    except Exception as exc:  # noqa: BLE001 - an alert never takes down what raised it
        return redact(f"{type(exc).__name__}: {exc}")
    return None
