"""Gate evidence from gateways' own ``/metrics`` (``shadowswap gate --metrics-url``), with no
Prometheus server in between.

Each URL is fetched once and its text exposition parsed (prometheus_client's parser) into
`shadowswap.gate.evidence.Series`, which go through the same reader as a registry or
Prometheus (`evidence_from_series`). The values are totals since the gateway started, not over
a window: a scrape has no history. ``shadowswap serve --workers N`` answers the totals of all
its workers whichever worker serves the scrape (prometheus_client's multiprocess mode), so
one URL stands for one gateway however many workers it runs.

Several URLs are replicas, summed series by series (same name and labels):

    counters, histograms        add (each replica counted its own requests)
    outbox size                 adds (each replica drains its own outbox)
    breaker state, outbox age,  the largest: the breaker is open if any replica's is (the
    drift, build and phase        ``state="open"`` sample is 1 there), the oldest outbox item
                                  of any replica, and the last reconcile's drift (from the
                                  /metrics of ``shadowswap reconcile --every``, which may be
                                  one of the URLs), which adding would count once per process
                                  that reports it

A URL that cannot be reached or answers other than 200 raises `StoreUnavailable`; an answer
that is not a text exposition, or one without ``retrieval_build_info`` (not a shadowswap
process), raises `StoreError`; a malformed URL raises `InvalidInput`. The command turns the
first two into exit code 1 (evidence that could not be read), the last into 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shadowswap.errors import InvalidInput, StoreError, StoreUnavailable
from shadowswap.gate.evidence import Series, evidence_from_series
from shadowswap.gate.model import Evidence

#: How long one scrape may take.
DEFAULT_TIMEOUT_S = 10.0
#: The sample every shadowswap exposition carries; without it the URL is something else.
BUILD_INFO = "retrieval_build_info"
#: Gauges whose replicas' values do not add: the largest stands for all (module docstring).
LARGEST_OF = frozenset({
    "retrieval_dual_write_breaker_state",
    "retrieval_dual_write_outbox_oldest_age_seconds",
    "retrieval_reconcile_drift",
    "retrieval_build_info",
    "retrieval_phase_info",
})  # fmt: skip

_OPTION = "--metrics-url"
_SHOWN = 120  # characters of a parser error shown in a message


def metrics_url(url: str) -> str:
    """``url`` checked (http or https, a host, a valid port); one with no path gets
    ``/metrics``. Raises `InvalidInput` (``--metrics-url``) otherwise."""
    example = "an http(s) URL like http://gateway:8080/metrics"
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise InvalidInput(_OPTION, f"{url!r} is not {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(_OPTION, f"{url!r} is not {example}")
    path = parts.path if parts.path not in ("", "/") else "/metrics"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_exposition(text: str, url: str) -> list[Series]:
    """Every sample of a text exposition (``_created`` ones left out: the gate does not use
    them and a multiprocess exposition has none). Raises `StoreError` when ``text`` is not an
    exposition or has no ``retrieval_build_info``; ``url`` names the source in the message."""
    out: list[Series] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_created") or math.isnan(sample.value):
                    continue
                out.append(Series(sample.name, dict(sample.labels), float(sample.value)))
    except ValueError as exc:
        shown = " ".join(str(exc).split())[:_SHOWN]
        raise StoreError(
            "metrics", "scrape", f"{url}: the answer is not a Prometheus text exposition ({shown})"
        ) from None
    if not any(s.name == BUILD_INFO for s in out):
        raise StoreError(
            "metrics", "scrape",
            f"{url}: no shadowswap metrics ({BUILD_INFO} is missing); give the /metrics of "
            "`shadowswap serve`",
        )  # fmt: skip
    return out


def merge_replicas(replicas: Sequence[Sequence[Series]]) -> list[Series]:
    """One series per name and label set: summed over replicas, or the largest value for the
    gauges in `LARGEST_OF`."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
    for series in replicas:
        for s in series:
            key = (s.name, tuple(sorted(s.labels.items())))
            seen = merged.get(key)
            if seen is None:
                merged[key] = s
                continue
            value = max(seen.value, s.value) if s.name in LARGEST_OF else seen.value + s.value
            merged[key] = Series(s.name, s.labels, value)
    return list(merged.values())


def evidence_from_expositions(
    texts: Mapping[str, str], *, env: str | None = None, backend: str | None = None
) -> Evidence:
    """Evidence from expositions already fetched, ``{url: text}`` (one per replica), keeping
    the ``env`` label and the shadow ``backend`` when given. Pure; raises like
    `parse_exposition`."""
    if not texts:
        raise InvalidInput(_OPTION, "give at least one URL")
    replicas = [parse_exposition(text, url) for url, text in texts.items()]
    evidence = evidence_from_series(merge_replicas(replicas), env=env, backend=backend)
    n = len(texts)
    notes = [
        "counts since the gateway started (a /metrics scrape has no window)"
        if n == 1
        else f"counts since each gateway started, summed over {n} gateways "
        "(a /metrics scrape has no window)"
    ]
    if env is not None:
        envs = {s.labels.get("env") for r in replicas for s in r if s.name == BUILD_INFO}
        if env not in envs:
            shown = ", ".join(repr(e) for e in sorted(e or "" for e in envs))
            notes.append(f"no series with env {env!r} at {', '.join(texts)} (they report {shown})")
    return replace(evidence, sources=tuple(f"metrics:{url}" for url in texts), notes=tuple(notes))


def evidence_from_metrics_url(
    urls: str | Sequence[str],
    *,
    env: str | None = None,
    backend: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    client: httpx.Client | None = None,
) -> Evidence:
    """Evidence from the ``/metrics`` of one gateway or several replicas (summed; a URL given
    twice is read once), for the ``env`` label (every env when None) and shadow ``backend``
    (every one when None). Raises `InvalidInput` for a malformed URL, `StoreUnavailable` when
    a URL cannot be reached or does not answer 200, `StoreError` when its answer is not a
    shadowswap exposition."""
    given = [urls] if isinstance(urls, str) else list(urls)
    wanted = list(dict.fromkeys(metrics_url(u) for u in given))
    if not wanted:
        raise InvalidInput(_OPTION, "give at least one URL")
    http = client or httpx.Client(timeout=timeout_s)
    try:
        texts = {url: _fetch(http, url) for url in wanted}
    finally:
        if client is None:
            http.close()
    return evidence_from_expositions(texts, env=env, backend=backend)


def _fetch(http: httpx.Client, url: str) -> str:
    try:
        resp = http.get(url, follow_redirects=True)
    except httpx.HTTPError as exc:
        detail = str(exc) or type(exc).__name__
        raise StoreUnavailable("metrics", "scrape", f"{url}: {detail}") from exc
    except httpx.InvalidURL as exc:  # not an HTTPError; metrics_url lets few through
        raise InvalidInput(_OPTION, f"{url!r}: {exc}") from None
    if resp.status_code != 200:
        raise StoreUnavailable(
            "metrics", "scrape", f"{url}: HTTP {resp.status_code} (is it a gateway's /metrics?)"
        )
    return resp.text
