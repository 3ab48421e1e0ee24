"""What operators rely on: liveness and readiness, /metrics, JSON logs, and a SIGTERM
that finishes the writes already acknowledged."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.clock import FrozenClock
from app.logs import AccessLog, JsonFormatter, log_config
from app.main import create_app
from app.settings import Settings
from tests import servers
from tests.alerts.conftest import Receiver, receiver  # noqa: F401  (the fixture)
from tests.alerts.test_alerts import _create, _move
from tests.conftest import Harness, metric_samples, running_app, usage_event


async def test_liveness_and_readiness(harness: Harness) -> None:
    assert (await harness.http.get("/healthz")).json() == {"status": "ok"}
    ready = await harness.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "event_bus": True, "writer": True}


async def test_not_ready_once_the_writer_stops(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            await app.state.runtime.writer.stop()  # as during a shutdown
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {
                "status": "unavailable",
                "checks": {"database": True, "event_bus": True, "writer": False},
            }
            assert (await http.get("/healthz")).status_code == 200


async def test_metrics_count_requests_ingestion_batches_and_subscriptions(
    harness: Harness,
) -> None:
    org = await harness.org("acme", grant_usd="10")
    key = await harness.key(org)
    before = await harness.metrics()
    await harness.usage(org, *(usage_event(key.id, f"r{n}") for n in range(3)))
    await harness.http.get("/no/such/path/42")
    subscription = harness.runtime.bus.subscribe(org.id)

    response = await harness.http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = metric_samples(response.text)
    assert after[("creditgraph_usage_events_total", ())] == 3
    batches = ("creditgraph_writer_batch_jobs_count", ())
    assert after[batches] == before[batches] + 1
    # The three usage events went through the writer as one batch of three jobs.
    bucket = "creditgraph_writer_batch_jobs_bucket"
    for le, grew in (("2.0", 0), ("5.0", 1)):
        key_ = (bucket, (("le", le),))
        assert after[key_] - before[key_] == grew
    usage = (
        "creditgraph_http_requests_total",
        (("method", "POST"), ("route", "/api/v1/usage"), ("status", "200")),
    )
    assert after[usage] == 1
    other = (
        "creditgraph_http_requests_total",
        (("method", "GET"), ("route", "other"), ("status", "404")),
    )
    assert after[other] == 1
    assert after[("creditgraph_active_subscriptions", ())] == 1
    harness.runtime.bus.unsubscribe(subscription)
    again = await harness.metrics()
    assert again[("creditgraph_active_subscriptions", ())] == 0


async def test_metrics_count_webhook_attempts_by_result(
    settings: Settings,
    receiver: Receiver,  # noqa: F811
) -> None:
    quick = {"alert_webhook_allow_private": True, "alert_webhook_backoff_seconds": 1}
    attempts = settings.alert_webhook_max_attempts
    clock = FrozenClock(datetime(2026, 1, 10, 9, 30, tzinfo=UTC))
    async with running_app(settings.model_copy(update=quick), clock) as harness:
        org = await harness.org("acme", grant_usd="10")
        receiver.status = 500
        await _create(harness, org, kind="BALANCE_BELOW", threshold="5", webhookUrl=receiver.url)
        await _move(harness, org, "-7")  # fires; every attempt fails, up to the maximum
        for n in range(attempts - 1):  # each retry when its backoff has passed
            clock.advance(timedelta(seconds=2**n))
            await harness.runtime.webhooks.settled()
        receiver.status = 200
        await _create(harness, org, kind="BALANCE_BELOW", threshold="2", webhookUrl=receiver.url)
        await _move(harness, org, "-2")  # the second rule fires; delivered at once
        samples = await harness.metrics()
    name = "creditgraph_alert_webhook_attempts_total"
    assert samples[(name, (("result", "pending"),))] == attempts - 1
    assert samples[(name, (("result", "failed"),))] == 1
    assert samples[(name, (("result", "delivered"),))] == 1
    assert len(receiver.requests) == attempts + 1


def test_json_log_lines_carry_their_fields() -> None:
    formatter = JsonFormatter()
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/healthz", "1.1", 200), None,
    )  # fmt: skip
    line = json.loads(formatter.format(access))
    assert line["level"] == "info"
    assert line["message"] == '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200'
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord(
            "app.x", logging.ERROR, "", 0, "write %d failed", (7,), sys.exc_info()
        )
    line = json.loads(formatter.format(failed))
    assert line["message"] == "write 7 failed"
    assert "ValueError: boom" in line["exception"]
    assert log_config(Settings()) is None  # text: uvicorn's own


async def test_the_access_log_has_a_line_per_request_in_uvicorns_format(
    settings: Settings,
) -> None:
    """``creditgraph serve`` writes the access log itself, in batches; its lines read as
    uvicorn's did (the JSON ones are checked with SIGTERM below)."""
    stream = io.StringIO()
    app = create_app(settings, access_log=AccessLog(stream, json=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 5151))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            await http.get("/healthz?probe=1")
            await http.post("/api/v1/usage", json={})  # no token
    assert stream.getvalue().splitlines() == [
        'INFO:     10.0.0.7:5151 - "GET /healthz?probe=1 HTTP/1.1" 200 OK',
        'INFO:     10.0.0.7:5151 - "POST /api/v1/usage HTTP/1.1" 401 Unauthorized',
    ]


def test_sigterm_finishes_every_acknowledged_write(tmp_path: Path) -> None:
    """Writes in flight when SIGTERM arrives are answered and committed; nothing
    acknowledged is lost. The server logs JSON lines meanwhile."""
    db = tmp_path / "server.db"
    env = servers.environment(
        f"sqlite+aiosqlite:///{db}", tmp_path / "state", CREDITGRAPH_LOG_FORMAT="json"
    )
    tenant = servers.create_tenant(env, "acme", grant_usd="1000")
    server = servers.start(env, tmp_path / "server.log")

    async def post(client: httpx.AsyncClient, n: int) -> list[str]:
        events = [
            usage_event(0, f"b{n}-{i}") | {"api_key_id": tenant.key_global_id} for i in range(100)
        ]
        try:
            response = await client.post("/api/v1/usage", json={"events": events})
        except httpx.TransportError:
            return []  # never acknowledged
        if response.status_code != 200:
            assert response.status_code == 503, response.text  # refused while stopping
            return []
        results = response.json()["results"]
        assert all(r["outcome"] == "billed" for r in results), results
        return [r["request_id"] for r in results]

    async def load() -> list[str]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=server.url, headers=tenant.headers(), limits=limits, timeout=60,
            trust_env=False,
        ) as client:  # fmt: skip
            posts = [asyncio.create_task(post(client, n)) for n in range(100)]
            done, _ = await asyncio.wait(posts, return_when=asyncio.FIRST_COMPLETED)
            server.process.send_signal(signal.SIGTERM)
            assert len(done) < len(posts)  # the others are in flight
            return [rid for task in posts for rid in await task]

    acknowledged = asyncio.run(load())
    assert server.stop() in (0, -signal.SIGTERM)
    assert acknowledged
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT request_id FROM usage_records")}
    assert set(acknowledged) <= stored
    result = servers.verify(env)
    assert result.returncode == 0, result.stdout
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line]
    assert any(line["message"] == "Application shutdown complete." for line in lines)
    assert any(line.get("path") == "/api/v1/usage" for line in lines)
