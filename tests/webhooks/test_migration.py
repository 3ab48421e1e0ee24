"""Migration 0015: alert deliveries, their attempts and their rules' secrets move onto the
webhooks' tables and back, nothing drifts from the models, and a delivery pending across
the move is still delivered, signed with its rule's secret."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app import maintenance
from app.alerts.tables import rules_t
from app.auth import Role
from app.clock import FrozenClock
from app.migrate import alembic_config
from app.money import parse_usd
from app.operations import adjust
from app.settings import Settings
from app.tables import metadata
from app.webhooks.signing import signing_vault
from app.webhooks.tables import attempts_t, deliveries_t, events_t
from tests.alerts.conftest import Receiver
from tests.conftest import running_app
from tests.webhooks.conftest import BACKOFF
from tests.webhooks.test_endpoints import create, mutate, signed_by


def _migrate(conn: Connection, settings: Settings, revision: str, up: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    config.attributes["settings"] = settings
    (command.upgrade if up else command.downgrade)(config, revision)


def _moved(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """The alert rules' deliveries as the webhooks' tables hold them."""
    alerts = select(deliveries_t.c.id).where(deliveries_t.c.alert_rule_id.is_not(None))
    return {
        "events": [
            tuple(r) for r in conn.execute(select(events_t).where(events_t.c.id.in_(alerts)))
        ],
        "deliveries": [
            tuple(r)
            for r in conn.execute(select(deliveries_t).where(deliveries_t.c.id.in_(alerts)))
        ],
        "attempts": [
            tuple(r)
            for r in conn.execute(select(attempts_t).where(attempts_t.c.delivery_id.in_(alerts)))
        ],
    }


def _old(conn: Connection) -> tuple[list[Any], list[Any], list[Any]]:
    """The tables as revision 0011 had them."""
    deliveries = conn.execute(text("SELECT * FROM alert_deliveries")).mappings().all()
    attempts = conn.execute(text("SELECT * FROM alert_delivery_attempts")).mappings().all()
    secrets = conn.execute(text("SELECT webhook_secret FROM alert_rules")).scalars().all()
    return list(deliveries), list(attempts), list(secrets)


async def test_alert_deliveries_move_and_still_deliver(
    settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.status = 500
    async with running_app(settings, clock) as app:
        org = await app.org("acme", grant_usd="10")
        body = await app.graphql(
            "mutation($input: CreateAlertRuleInput!) { createAlertRule(input: $input) "
            "{ webhookSecret } }",
            app.token(org, Role.OWNER),
            input={"kind": "BALANCE_BELOW", "threshold": "5", "webhookUrl": receiver.url},
        )
        rule_secret = body["data"]["createAlertRule"]["webhookSecret"]
        endpoint = await create(app, org, receiver.url, ["PLAN_CHANGED"])
        await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint["webhookEndpoint"]["id"])
        await adjust(app.runtime, org.id, parse_usd("-7", allow_negative=True), "t", actor="t")
        await app.runtime.alerts.settled()
        await app.runtime.webhooks.settled()  # one failed attempt each
    assert len(receiver.requests) == 2

    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            before = await conn.run_sync(_moved)
            assert [len(rows) for rows in before.values()] == [1, 1, 1]
            await conn.run_sync(_migrate, settings, "0011", False)
            deliveries, attempts, secrets = await conn.run_sync(_old)
            assert secrets == [rule_secret]
            (delivery,), (attempt,) = deliveries, attempts
            assert (delivery["url"], delivery["status"], delivery["attempts"]) == (
                receiver.url,
                "pending",
                1,
            )
            assert delivery["body"] == before["events"][0][3]
            assert (attempt["attempt"], attempt["status_code"], attempt["error"]) == (
                1,
                500,
                "HTTP 500",
            )
            await conn.run_sync(_migrate, settings, "head", True)
            assert await conn.run_sync(_moved) == before
            sealed = await conn.scalar(select(rules_t.c.webhook_secret_encrypted))
            assert sealed != rule_secret
            assert signing_vault(settings).open(sealed) == rule_secret
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in c.dialect.get_columns(c, "alert_rules")]
            )
            assert "webhook_secret" not in columns
            for gone in ("alert_deliveries", "alert_delivery_attempts"):
                assert not await conn.run_sync(lambda c, name=gone: c.dialect.has_table(c, name))
            drift = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
            assert drift == []
    finally:
        await engine.dispose()

    # The moved delivery's next attempt is made by the new mechanism, with its old secret.
    receiver.status = 200
    clock.advance(timedelta(seconds=BACKOFF))
    async with running_app(settings, clock) as app:
        await maintenance.run_once(app.runtime)
        await app.runtime.webhooks.settled()
        async with app.runtime.db.reader.connect() as conn:
            moved = (
                await conn.execute(
                    select(deliveries_t).where(deliveries_t.c.alert_rule_id.is_not(None))
                )
            ).one()
    assert (moved.status, moved.attempts) == ("delivered", 2)
    fired = [r for r in receiver.requests if signed_by(rule_secret, r)]
    assert len(fired) == 2
    assert fired[0].body == fired[1].body
