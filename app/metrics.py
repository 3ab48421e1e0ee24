"""Prometheus metrics, served at ``/metrics``.

Each process (each ``Runtime``) has its own registry rather than the library's global
one, so several apps in one process (the tests) do not share counters. The hot path
pays one counter increment and one histogram observation per writer batch, not per
event; the subscription gauge is computed when scraped.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.events import Event, UsageRecorded
from app.logs import AccessLog

# Jobs per writer transaction: 1 when idle, up to CREDITGRAPH_WRITER_BATCH_MAX under load.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Tally:
    """A counter per label set, kept as plain integers and exported as a Prometheus
    counter when scraped. What every request counts: ``prometheus_client``'s counters
    take a lock and several calls per increment; these, one dict update (on the event
    loop's thread, where every request is counted)."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.counts: collections.Counter[tuple[str, ...]] = collections.Counter()
        registry.register(self)

    def add(self, *labels: str) -> None:
        self.counts[labels] += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self.counts.items():
            family.add_metric(labels, value)
        yield family


class Metrics:
    def __init__(self, subscriber_count: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Tally(
            "creditgraph_http_requests",
            "HTTP requests and WebSocket connections, by route, method and status.",
            ["route", "method", "status"],
            self.registry,
        )
        self.usage_events = Counter(
            "creditgraph_usage_events",
            "Usage records committed by this instance's writer.",
            registry=self.registry,
        )
        self.batch_jobs = Histogram(
            "creditgraph_writer_batch_jobs",
            "Jobs per writer transaction.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "creditgraph_active_subscriptions",
            "GraphQL subscriptions open on this instance.",
            registry=self.registry,
        )
        self.subscriptions.set_function(lambda: float(subscriber_count()))
        self.webhooks = Counter(
            "creditgraph_alert_webhook_attempts",
            "Webhook delivery attempts, alert rules' and event endpoints' (the name is "
            "from when only alerts had webhooks), by the delivery's status after the "
            "attempt (delivered, pending: will retry, failed: given up).",
            ["result"],
            registry=self.registry,
        )
        self.bus_errors = Counter(
            "creditgraph_event_bus_errors",
            "Event bus failures: a publish that failed, or a resubscription after a lost "
            "connection (subscribers re-read).",
            ["kind"],
            registry=self.registry,
        )

        # By (answer,): kept (from memory), shared, read.
        self.answered = Tally(
            "creditgraph_graphql_cached_queries",
            "Queries the GraphQL response cache could answer, by how they were: kept (from "
            "memory), shared (waited for the same answer another request was reading), "
            "read (read and kept).",
            ["answer"],
            self.registry,
        )
        for answer in ("kept", "shared", "read"):  # every series there from the start
            self.answered.counts[(answer,)] = 0

    def request(self, route: str, method: str, status: str) -> None:
        self.requests.add(route, method, status)

    def committed(self, jobs: int, events: Sequence[Event]) -> None:
        """One writer transaction committed ``jobs`` and published ``events``."""
        self.batch_jobs.observe(jobs)
        usage = list(map(type, events)).count(UsageRecorded)  # C loops: ~20 ns an event
        if usage:
            self.usage_events.inc(usage)

    def webhook_attempted(self, status: str) -> None:
        self.webhooks.labels(status).inc()

    def bus_error(self, kind: str) -> None:
        self.bus_errors.labels(kind).inc()

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.runtime.metrics
    return metrics.response()


class RequestMetrics:
    """ASGI middleware counting requests by route, method and status, and handing each
    answered HTTP request to the access log (``app.logs.AccessLog``) when there is one.

    The route label is the route's path (a known one) or "other", so that scanners
    probing random paths cannot grow the series without bound.
    """

    def __init__(
        self, app: ASGIApp, routes: Callable[[str], str], access_log: AccessLog | None
    ) -> None:
        self.app = app
        self.routes = routes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and status == 0:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = 500
            raise
        finally:
            runtime = getattr(scope["app"].state, "runtime", None)
            if runtime is not None:
                method = scope["method"] if kind == "http" else "WS"
                method = method if method in METHODS or method == "WS" else "other"
                runtime.metrics.request(self.routes(scope["path"]), method, str(status))
            if self.access_log is not None and kind == "http":
                self._log(scope, status)

    def _log(self, scope: Scope, status: int) -> None:
        assert self.access_log is not None
        unlogged = self.access_log.unlogged_agent
        if unlogged is not None and (b"user-agent", unlogged) in scope["headers"]:
            return
        client = scope.get("client")
        path, query = scope["path"], scope.get("query_string")
        self.access_log.request(
            f"{client[0]}:{client[1]}" if client else "-",
            scope["method"],
            f"{path}?{query.decode('latin-1')}" if query else path,
            scope["http_version"],
            status,
        )
