"""Alert rules: saving them, evaluating them after commits, firing and delivering.

Evaluation is pushed, not polled: the ledger writer reports after each commit which
organizations' balances changed, and their rules are evaluated in a background task
(coalesced per organization), never in the debit's path. A rule is ``armed`` or
``firing``; it fires on the conditional UPDATE armed -> firing, so of several instances
(or overlapping evaluations) exactly one fires per crossing, and re-arms by the UPDATE
firing -> armed when the condition no longer holds.

Webhooks: each fired event with a URL gets a delivery row, committed with the event.
Deliveries are attempted in the background with exponential backoff, every attempt
logged; an instance claims a due delivery by moving its ``next_attempt_at`` ahead with
a conditional UPDATE, so two instances do not send the same attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx
from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from app import audit
from app.alerts.measure import holds, measure, message
from app.alerts.tables import (
    AlertKind,
    DeliveryStatus,
    RuleState,
    alert_events_t,
    attempts_t,
    deliveries_t,
    rules_t,
)
from app.alerts.urls import UnsafeUrl, check_resolved
from app.clock import Clock
from app.db import Database, Prebuilt
from app.events import AlertFired, EventBus
from app.ids import to_global_id
from app.ledger.state import keys_t
from app.money import format_usd
from app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

SIGNATURE_HEADER = "Creditgraph-Signature"
# How long an instance holds a delivery it is attempting before another may take it.
LEASE = timedelta(seconds=60)
# The least time between two evaluations of one organization's rules: a busy gateway
# commits its batches hundreds of times a second, each a reason to evaluate.
EVALUATE_EVERY = 0.1
DUE_BATCH = 100
MAX_RULES = 100  # per organization


class UnknownRuleKey(LookupError):
    """A KEY_CAP_PERCENT rule named a key that is not the organization's."""


class TooManyRules(ValueError):
    pass


def rule_values(row: Any) -> dict[str, Any]:
    """A rule as its audit records show it."""
    return {
        "kind": row.kind,
        "threshold": None if row.threshold is None else format_usd(row.threshold),
        "apiKeyId": row.api_key_id,
        "webhookUrl": row.webhook_url,
        "enabled": row.enabled,
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Fired:
    event: AlertFired
    delivery_id: int | None


def _rules_statement(_dialect: str, _lock: bool, *, of_kind: bool) -> Select[Any]:
    statement = select(rules_t).where(
        rules_t.c.organization_id == bindparam("organization_id"),
        rules_t.c.enabled,
        rules_t.c.deleted_at.is_(None),
    )
    return statement.where(rules_t.c.kind == bindparam("kind")) if of_kind else statement


# Built once: evaluation reads the rules after every commit of a busy organization.
_rules = Prebuilt(partial(_rules_statement, of_kind=False))
_rules_of_kind = Prebuilt(partial(_rules_statement, of_kind=True))


def _active_rules(
    conn: Connection, organization_id: int, kind: AlertKind | None = None
) -> list[Any]:
    if kind is None:
        return list(conn.execute(_rules(conn), {"organization_id": organization_id}))
    params = {"organization_id": organization_id, "kind": kind.value}
    return list(conn.execute(_rules_of_kind(conn), params))


def _store_event(conn: Connection, rule: Any, value: int | None, text: str, now: datetime) -> Fired:
    event_id = conn.execute(
        insert(alert_events_t)
        .values(
            organization_id=rule.organization_id,
            rule_id=rule.id,
            message=text,
            value=value,
            created_at=now,
        )
        .returning(alert_events_t.c.id)
    ).scalar_one()
    delivery_id = None
    if rule.webhook_url:
        body = {
            "type": "alert.fired",
            "id": to_global_id("AlertEvent", event_id),
            "rule": {
                "id": to_global_id("AlertRule", rule.id),
                "kind": AlertKind(rule.kind).name,
                "threshold": None if rule.threshold is None else format_usd(rule.threshold),
            },
            "message": text,
            "value": None if value is None else format_usd(value),
            "firedAt": now.isoformat(),
        }
        delivery_id = conn.execute(
            insert(deliveries_t)
            .values(
                event_id=event_id,
                rule_id=rule.id,
                url=rule.webhook_url,
                body=json.dumps(body, separators=(",", ":")),
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .returning(deliveries_t.c.id)
        ).scalar_one()
    event = AlertFired(rule.organization_id, event_id, rule.id, rule.kind, text, value, now)
    return Fired(event, delivery_id)


def _transition(conn: Connection, rule_id: int, old: RuleState, new: RuleState) -> bool:
    """Move the rule from ``old`` to ``new`` if it is still there; whether this did it."""
    result = conn.execute(
        update(rules_t)
        .where(
            rules_t.c.id == rule_id,
            rules_t.c.state == old.value,
            rules_t.c.enabled,
            rules_t.c.deleted_at.is_(None),
        )
        .values(state=new.value)
    )
    return result.rowcount == 1


class Alerts:
    def __init__(self, db: Database, bus: EventBus, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.settings = settings
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        # Told the delivery's status after each attempt (``app.metrics``).
        self.on_attempted: Callable[[str], None] | None = None

    # Reads share the APIs' readers; writes are their own, never the ledger writer's, so
    # alert work never queues in front of a debit.
    async def _read(self, work: Callable[[Connection], T]) -> T:
        return await self.db.read(work)

    async def _write(self, work: Callable[[Connection], T], organization_id: int | None) -> T:
        async with self.db.write(organization_id) as conn:
            return await conn.run_sync(work)

    # -- evaluation ------------------------------------------------------------------

    def changed(self, organization_ids: set[int]) -> None:
        """The writer's hook: these organizations' balances just changed (committed)."""
        for organization_id in organization_ids:
            if organization_id in self._running:
                self._again.add(organization_id)  # evaluate once more when it ends
                continue
            self._running.add(organization_id)
            self._spawn(self._evaluate_loop(organization_id))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evaluate_loop(self, organization_id: int) -> None:
        """Evaluate now, and once more after the commits that arrive meanwhile: under a
        stream of commits, once per ``EVALUATE_EVERY`` seconds, each reading the state
        of the latest commit (a crossing is never missed, only seen up to that late)."""
        try:
            while True:
                self._again.discard(organization_id)
                started = time.monotonic()
                try:
                    await self.evaluate(organization_id)
                except Exception:
                    log.exception("alert evaluation for organization %d failed", organization_id)
                if organization_id not in self._again:
                    return
                await asyncio.sleep(started + EVALUATE_EVERY - time.monotonic())
        finally:
            self._running.discard(organization_id)

    async def evaluate(self, organization_id: int) -> list[AlertFired]:
        """Fire the rules whose condition started to hold, re-arm those that stopped."""
        now = self.clock.now()

        def read(conn: Connection) -> tuple[list[Any], dict[int, int]]:
            rules = [
                r
                for r in _active_rules(conn, organization_id)
                if r.kind != AlertKind.AUTO_RELOAD_FAILED.value and r.threshold is not None
            ]
            return rules, (measure(conn, organization_id, rules, now) if rules else {})

        rules, values = await self._read(read)
        to_fire, to_arm = [], []
        for rule in rules:
            if rule.id not in values:
                continue
            on = holds(AlertKind(rule.kind), values[rule.id], rule.threshold)
            if on and rule.state == RuleState.ARMED.value:
                to_fire.append(rule)
            elif not on and rule.state == RuleState.FIRING.value:
                to_arm.append(rule)
        if not to_fire and not to_arm:
            return []

        def write(conn: Connection) -> list[Fired]:
            fired = []
            for rule in to_arm:
                _transition(conn, rule.id, RuleState.FIRING, RuleState.ARMED)
            for rule in to_fire:
                if _transition(conn, rule.id, RuleState.ARMED, RuleState.FIRING):
                    value = values[rule.id]
                    text = message(AlertKind(rule.kind), value, rule.threshold)
                    fired.append(_store_event(conn, rule, value, text, now))
            return fired

        return await self._announce(await self._write(write, organization_id))

    async def reload_failed(self, organization_id: int, reason: str | None) -> list[AlertFired]:
        """An auto-reload's charge failed: every AUTO_RELOAD_FAILED rule fires, once per
        failure (the reload's own claim makes one instance see each failure)."""
        now = self.clock.now()

        def write(conn: Connection) -> list[Fired]:
            fired = []
            for rule in _active_rules(conn, organization_id, AlertKind.AUTO_RELOAD_FAILED):
                text = message(AlertKind.AUTO_RELOAD_FAILED, None, None, reason or "")
                fired.append(_store_event(conn, rule, None, text, now))
            return fired

        return await self._announce(await self._write(write, organization_id))

    def reload_failed_hook(self, organization_id: int, reason: str | None) -> None:
        """``reload_failed`` in the background: the payments service's hook."""

        async def run() -> None:
            try:
                await self.reload_failed(organization_id, reason)
            except Exception:
                log.exception("auto-reload alert for organization %d failed", organization_id)

        self._spawn(run())

    async def _announce(self, fired: list[Fired]) -> list[AlertFired]:
        if fired:
            await self.bus.publish([f.event for f in fired])
        for f in fired:
            if f.delivery_id is not None:
                self._spawn(self._deliver(f.delivery_id))
        return [f.event for f in fired]

    # -- delivery --------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones."""
        return float(self.settings.alert_webhook_backoff_seconds * 2 ** (attempts - 1))

    async def deliver_due(self) -> int:
        """Attempt every delivery that is due (the periodic job: retries and restarts)."""
        now = self.clock.now()
        ids = await self._read(
            lambda conn: list(
                conn.scalars(
                    select(deliveries_t.c.id)
                    .where(
                        deliveries_t.c.status == DeliveryStatus.PENDING.value,
                        deliveries_t.c.next_attempt_at <= now,
                    )
                    .order_by(deliveries_t.c.next_attempt_at)
                    .limit(DUE_BATCH)
                )
            )
        )
        for delivery_id in ids:
            self._spawn(self._deliver(delivery_id))
        return len(ids)

    async def _deliver(self, delivery_id: int) -> None:
        try:
            delay = await self.attempt(delivery_id)
            while delay is not None:
                await asyncio.sleep(delay + 0.01)  # past the due time, so the claim holds
                delay = await self.attempt(delivery_id)
        except Exception:
            log.exception("webhook delivery %d failed", delivery_id)

    async def attempt(self, delivery_id: int) -> float | None:
        """One attempt if the delivery is due and no one else holds it; the seconds until
        the next attempt, or None when there is none to make (delivered, given up, held)."""
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
            if claimed.rowcount != 1:
                return None
            return conn.execute(
                select(deliveries_t, rules_t.c.webhook_secret)
                .join(rules_t, rules_t.c.id == deliveries_t.c.rule_id)
                .where(deliveries_t.c.id == delivery_id)
            ).one()

        row = await self._write(claim, None)  # a delivery's row names no organization
        if row is None:
            return None
        status_code, error = await self._post(row.url, row.webhook_secret, row.body.encode())
        attempt = row.attempts + 1
        done = status_code is not None and 200 <= status_code < 300
        given_up = not done and attempt >= self.settings.alert_webhook_max_attempts
        delay = None if done or given_up else self.backoff(attempt)
        finished = self.clock.now()
        status = (
            DeliveryStatus.DELIVERED
            if done
            else DeliveryStatus.FAILED
            if given_up
            else DeliveryStatus.PENDING
        )

        def record(conn: Connection) -> None:
            conn.execute(
                insert(attempts_t).values(
                    delivery_id=delivery_id,
                    attempt=attempt,
                    status_code=status_code,
                    error=None if error is None else error[:500],
                    created_at=finished,
                )
            )
            conn.execute(
                update(deliveries_t)
                .where(deliveries_t.c.id == delivery_id)
                .values(
                    attempts=attempt,
                    status=status.value,
                    next_attempt_at=finished + timedelta(seconds=delay or 0),
                )
            )

        await self._write(record, None)
        if self.on_attempted is not None:
            self.on_attempted(status.value)
        return delay

    async def _post(self, url: str, secret: str, body: bytes) -> tuple[int | None, str | None]:
        """POST the signed body: the response's status code, or why there was none."""
        try:
            await check_resolved(url, allow_private=self.settings.alert_webhook_allow_private)
        except UnsafeUrl as exc:
            return None, f"refused: {exc}"
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.alert_webhook_timeout_seconds,
                follow_redirects=False,
                trust_env=False,
            )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "creditgraph-alerts",
            SIGNATURE_HEADER: sign(secret, int(self.clock.now().timestamp()), body),
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        error = None if response.is_success else f"HTTP {response.status_code}"
        return response.status_code, error

    async def settled(self) -> None:
        """Wait until every evaluation and delivery started so far (and what they started
        in turn) has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- rules -----------------------------------------------------------------------

    async def create_rule(
        self,
        organization_id: int,
        kind: AlertKind,
        threshold: int | None,
        *,
        actor: str,
        api_key_id: int | None = None,
        webhook_url: str | None = None,
    ) -> tuple[Any, str]:
        """A new armed rule (audited) and its webhook secret, evaluated at once; the
        caller has checked the threshold and the URL."""
        secret = new_secret()
        async with self.db.write(organization_id) as conn:
            if api_key_id is not None:
                found = await conn.scalar(
                    select(keys_t.c.id).where(
                        keys_t.c.id == api_key_id, keys_t.c.organization_id == organization_id
                    )
                )
                if found is None:
                    raise UnknownRuleKey(f"no API key {api_key_id}")
            count = await conn.scalar(
                select(rules_t.c.id)
                .where(rules_t.c.organization_id == organization_id, rules_t.c.deleted_at.is_(None))
                .offset(MAX_RULES - 1)
                .limit(1)
            )
            if count is not None:
                raise TooManyRules(f"at most {MAX_RULES} rules")
            rule_id = (
                await conn.execute(
                    rules_t.insert()
                    .values(
                        organization_id=organization_id,
                        kind=kind.value,
                        threshold=threshold,
                        api_key_id=api_key_id,
                        webhook_url=webhook_url,
                        webhook_secret=secret,
                        enabled=True,
                        state=RuleState.ARMED.value,
                        created_by=actor,
                        created_at=self.clock.now(),
                    )
                    .returning(rules_t.c.id)
                )
            ).scalar_one()
            row = (await conn.execute(select(rules_t).where(rules_t.c.id == rule_id))).one()
            await self.audit_rule(
                conn, rule_id, organization_id, actor, "alert_rule.create", after=rule_values(row)
            )
        self.changed({organization_id})
        return row, secret

    async def audit_rule(
        self, conn: Any, rule_id: int, organization_id: int, actor: str, action: str, **kw: Any
    ) -> None:
        await audit.record(
            conn,
            organization_id=organization_id,
            actor=actor,
            action=action,
            target=f"alert_rule:{rule_id}",
            at=self.clock.now(),
            **kw,
        )
