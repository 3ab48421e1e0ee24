"""Alert rules: saving them, evaluating them after commits, firing and delivering.

Evaluation is pushed, not polled: the ledger writer reports after each commit which
organizations' balances changed, and their rules are evaluated in a background task
(coalesced per organization), never in the debit's path. A rule is ``armed`` or
``firing``; it fires on the conditional UPDATE armed -> firing, so of several instances
(or overlapping evaluations) exactly one fires per crossing, and re-arms by the UPDATE
firing -> armed when the condition no longer holds.

Webhooks: a firing rule with a URL records an ``alert.fired`` event and its delivery
in the firing's transaction (``app.webhooks.outbox``), delivered by ``app.webhooks``
once it commits; a BALANCE_BELOW firing also records ``balance.low`` for the event
endpoints subscribed to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from app import audit
from app.alerts.measure import holds, measure, message
from app.alerts.tables import AlertKind, RuleState, alert_events_t, rules_t
from app.clock import Clock
from app.db import Database, Prebuilt
from app.events import AlertFired, EventBus
from app.ids import to_global_id
from app.keys.service import KeyVault
from app.ledger.state import keys_t
from app.money import format_usd
from app.webhooks import outbox
from app.webhooks.signing import new_secret, seal
from app.webhooks.tables import ALERT_FIRED, EventType

log = logging.getLogger(__name__)

T = TypeVar("T")

# The least time between two evaluations of one organization's rules: a busy gateway
# commits its batches hundreds of times a second, each a reason to evaluate.
EVALUATE_EVERY = 0.1
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


def _store_event(
    conn: Connection, rule: Any, value: int | None, text: str, now: datetime
) -> AlertFired:
    organization_id = rule.organization_id
    event_id = conn.execute(
        insert(alert_events_t)
        .values(
            organization_id=organization_id,
            rule_id=rule.id,
            message=text,
            value=value,
            created_at=now,
        )
        .returning(alert_events_t.c.id)
    ).scalar_one()
    kind = AlertKind(rule.kind)
    threshold = None if rule.threshold is None else format_usd(rule.threshold)
    rule_id = to_global_id("AlertRule", rule.id)
    if rule.webhook_url:
        body = {
            "type": ALERT_FIRED,
            "id": to_global_id("AlertEvent", event_id),
            "rule": {"id": rule_id, "kind": kind.name, "threshold": threshold},
            "message": text,
            "value": None if value is None else format_usd(value),
            "firedAt": now.isoformat(),
        }
        encoded = json.dumps(body, separators=(",", ":"))
        webhook_event = outbox.insert_event(conn, organization_id, ALERT_FIRED, encoded, now)
        outbox.queue(conn, organization_id, webhook_event, now, alert_rule_id=rule.id)
    if kind is AlertKind.BALANCE_BELOW and value is not None:
        low = {"alertRuleId": rule_id, "balance": format_usd(value), "threshold": threshold}
        outbox.record(conn, organization_id, EventType.BALANCE_LOW, low, now)
    return AlertFired(organization_id, event_id, rule.id, rule.kind, text, value, now)


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
    def __init__(self, db: Database, bus: EventBus, clock: Clock, vault: KeyVault) -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.vault = vault  # seals webhook secrets (``app.webhooks.signing``)
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

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

        def write(conn: Connection) -> list[AlertFired]:
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

        def write(conn: Connection) -> list[AlertFired]:
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

    async def _announce(self, fired: list[AlertFired]) -> list[AlertFired]:
        if fired:
            await self.bus.publish(fired)
        return fired

    async def settled(self) -> None:
        """Wait until every evaluation started so far (and what it started in turn) has
        finished; the webhooks they queued are ``app.webhooks``' to deliver."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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
                        webhook_secret_encrypted=seal(self.vault, secret),
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
