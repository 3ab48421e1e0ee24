"""The delivery worker: every webhook POST, alert rules' and event endpoints' alike.

A delivery is attempted as soon as the transaction that queued it commits
(``app.webhooks.outbox``), and a failed attempt (no 2xx) again after
``alert_webhook_backoff_seconds * 2^(n-1)``, on the clock, up to
``alert_webhook_max_attempts`` in all; every attempt is logged. An instance claims a due
delivery by moving its ``next_attempt_at`` ahead with a conditional UPDATE, so two
instances never send the same attempt; the periodic jobs (``deliver_due``) take up what
a restart or another process left. Each attempt reads the destination's URL and secret
then: a changed URL is followed, a deleted or disabled destination ends the delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import httpx
from cryptography.fernet import InvalidToken
from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from app.alerts.tables import rules_t
from app.clock import Clock, Timer
from app.db import Database
from app.keys.service import KeyVault
from app.settings import Settings
from app.webhooks.outbox import Queued, watch
from app.webhooks.signing import SIGNATURE_HEADER, sign
from app.webhooks.tables import (
    DeliveryStatus,
    attempts_t,
    deliveries_t,
    endpoints_t,
    events_t,
)
from app.webhooks.urls import UnsafeUrl, resolved_address

log = logging.getLogger(__name__)

# How long an instance holds a delivery it is attempting before another may take it.
LEASE = timedelta(seconds=60)
DUE_BATCH = 100
UNREADABLE = (
    "the signing secret cannot be decrypted: CREDITGRAPH_KEY_ENCRYPTION_KEY is not the key "
    "it was sealed with"
)


def _target(conn: Connection, delivery_id: int) -> Any:
    """The delivery with its event's body and its destination's URL, secret and state."""
    endpoint = and_(
        endpoints_t.c.id == deliveries_t.c.endpoint_id, endpoints_t.c.deleted_at.is_(None)
    )
    rule = and_(rules_t.c.id == deliveries_t.c.alert_rule_id, rules_t.c.deleted_at.is_(None))
    return conn.execute(
        select(
            deliveries_t.c.attempts,
            deliveries_t.c.endpoint_id,
            events_t.c.body,
            endpoints_t.c.url.label("endpoint_url"),
            endpoints_t.c.enabled.label("endpoint_enabled"),
            endpoints_t.c.secret_encrypted.label("endpoint_secret"),
            rules_t.c.webhook_url.label("rule_url"),
            rules_t.c.webhook_secret_encrypted.label("rule_secret"),
        )
        .join(events_t, events_t.c.id == deliveries_t.c.event_id)
        .outerjoin(endpoints_t, endpoint)
        .outerjoin(rules_t, rule)
        .where(deliveries_t.c.id == delivery_id)
    ).one()


def _destination(row: Any) -> tuple[str, str] | str:
    """The (URL, sealed secret) to POST to, or why there is none any more."""
    if row.endpoint_id is not None:
        if row.endpoint_url is None:
            return "the endpoint was deleted"
        if not row.endpoint_enabled:
            return "the endpoint is disabled"
        return row.endpoint_url, row.endpoint_secret
    if row.rule_url is None:
        return "the alert rule was deleted or has no webhook URL now"
    return row.rule_url, row.rule_secret


class Webhooks:
    def __init__(self, db: Database, clock: Clock, settings: Settings, vault: KeyVault) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.vault = vault  # seals signing secrets (``app.webhooks.signing``)
        self._tasks: set[asyncio.Task[None]] = set()
        self._retries: dict[int, Timer] = {}
        self._http: httpx.AsyncClient | None = None
        self._loop = asyncio.get_running_loop()
        # Told the delivery's status after each attempt (``app.metrics``).
        self.on_attempted: Callable[[str], None] | None = None

    def watch(self) -> None:
        """Deliver what each committed write queued, as it commits."""
        watch(self.db.write_engines, self._committed)

    def _committed(self, queued: Queued) -> None:
        # The connection's pool calls from where the transaction ran: the event loop's
        # thread, or a thread of the SQLite pool when another process held the lock.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._loop.call_soon_threadsafe(self._start, queued)
            return
        self._start(queued)

    def _start(self, queued: Queued) -> None:
        for delivery_id, organization_id in queued:
            self._spawn(self._deliver(delivery_id, organization_id))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def backoff(self, attempts: int) -> timedelta:
        """How long after ``attempts`` failed attempts the next is due."""
        return timedelta(seconds=self.settings.alert_webhook_backoff_seconds * 2 ** (attempts - 1))

    async def deliver_due(self) -> int:
        """Attempt every delivery that is due (the periodic job: restarts, lost timers)."""
        now = self.clock.now()
        rows = await self.db.read(
            lambda conn: conn.execute(
                select(deliveries_t.c.id, deliveries_t.c.organization_id)
                .where(
                    deliveries_t.c.status == DeliveryStatus.PENDING.value,
                    deliveries_t.c.next_attempt_at <= now,
                )
                .order_by(deliveries_t.c.next_attempt_at)
                .limit(DUE_BATCH)
            ).all()
        )
        self._start([(row.id, row.organization_id) for row in rows])
        return len(rows)

    async def _deliver(self, delivery_id: int, organization_id: int) -> None:
        try:
            due = await self.attempt(delivery_id, organization_id)
        except Exception:
            log.exception("webhook delivery %d failed", delivery_id)
            return
        if due is not None:
            self._retries[delivery_id] = self.clock.call_at(
                due, lambda: self._retry(delivery_id, organization_id)
            )

    def _retry(self, delivery_id: int, organization_id: int) -> None:
        self._retries.pop(delivery_id, None)
        self._spawn(self._deliver(delivery_id, organization_id))

    async def attempt(self, delivery_id: int, organization_id: int) -> datetime | None:
        """One attempt if the delivery is due and no one else holds it; when the next is
        due, or None when there is none to make (delivered, given up, held elsewhere)."""
        now = self.clock.now()

        def claim(conn: Connection) -> Any:
            claimed = conn.execute(
                update(deliveries_t)
                .where(
                    deliveries_t.c.id == delivery_id,
                    deliveries_t.c.status == DeliveryStatus.PENDING.value,
                    deliveries_t.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + LEASE)
            )
            return _target(conn, delivery_id) if claimed.rowcount == 1 else None

        async with self.db.write(organization_id) as conn:
            row = await conn.run_sync(claim)
        if row is None:
            return None
        attempt = row.attempts + 1
        status_code, error, ended = await self._send(row)
        done = status_code is not None and 200 <= status_code < 300
        given_up = ended or (not done and attempt >= self.settings.alert_webhook_max_attempts)
        finished = self.clock.now()
        due = None if done or given_up else finished + self.backoff(attempt)
        status = (
            DeliveryStatus.DELIVERED
            if done
            else DeliveryStatus.FAILED
            if given_up
            else DeliveryStatus.PENDING
        )
        async with self.db.write(organization_id) as conn:
            await conn.execute(
                insert(attempts_t).values(
                    delivery_id=delivery_id,
                    attempt=attempt,
                    status_code=status_code,
                    error=None if error is None else error[:500],
                    created_at=finished,
                )
            )
            await conn.execute(
                update(deliveries_t)
                .where(deliveries_t.c.id == delivery_id)
                .values(attempts=attempt, status=status.value, next_attempt_at=due or finished)
            )
        if self.on_attempted is not None:
            self.on_attempted(status.value)
        return due

    async def _send(self, row: Any) -> tuple[int | None, str | None, bool]:
        """POST the event to its destination: the status code, the error, and whether the
        delivery ends here whatever attempts are left (no destination or secret now)."""
        destination = _destination(row)
        if isinstance(destination, str):
            return None, destination, True
        url, sealed = destination
        try:
            secret = self.vault.open(sealed)
        except InvalidToken:
            return None, UNREADABLE, True
        status_code, error = await self._post(url, secret, row.body.encode())
        return status_code, error, False

    async def _post(self, url: str, secret: str, body: bytes) -> tuple[int | None, str | None]:
        """POST the signed body: the response's status code, or why there was none."""
        try:
            address = await resolved_address(
                url, allow_private=self.settings.alert_webhook_allow_private
            )
        except UnsafeUrl as exc:
            return None, f"refused: {exc}"
        # Sent to the address checked, naming the host in Host and TLS's SNI (so the
        # certificate is still verified against it).
        target = httpx.URL(url)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.alert_webhook_timeout_seconds,
                follow_redirects=False,
                trust_env=False,
            )
        headers = {
            "Content-Type": "application/json",
            "Host": target.netloc.decode("ascii"),
            "User-Agent": "creditgraph-webhooks",
            SIGNATURE_HEADER: sign(secret, int(self.clock.now().timestamp()), body),
        }
        try:
            response = await self._http.post(
                target.copy_with(host=address), content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        error = None if response.is_success else f"HTTP {response.status_code}"
        return response.status_code, error

    async def settled(self) -> None:
        """Wait until every attempt started so far has finished; retries wait for their
        time on the clock (a test's frozen clock runs them as it is advanced)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Deliveries cut short here are taken up again after their lease."""
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
