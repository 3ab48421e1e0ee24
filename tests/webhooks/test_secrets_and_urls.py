"""Signing secrets are kept sealed, never in plain text, under a key that survives a
restart; production needs the key configured. Private addresses need the setting, at
saving and again at each delivery."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.auth import ConfigurationError, Role
from app.clock import FrozenClock
from app.orgs.service import OrgRef
from app.runtime import Runtime
from app.settings import Settings
from app.tables import metadata
from tests.alerts.conftest import Receiver
from tests.conftest import Harness, running_app
from tests.webhooks.test_endpoints import codes, create, deliveries, endpoints, mutate, signed_by

KEY_FILE = "webhook-encryption-key"


async def _stored(app: Harness) -> str:
    """Every value of every row of every table, as text."""
    async with app.runtime.db.reader.connect() as conn:
        rows = [
            repr(tuple(row))
            for t in metadata.sorted_tables
            for row in (await conn.execute(select(t))).all()
        ]
    return "\n".join(rows)


async def _alert_rule(app: Harness, org: OrgRef, url: str) -> str:
    body = await app.graphql(
        "mutation($input: CreateAlertRuleInput!) { createAlertRule(input: $input) "
        "{ webhookSecret userErrors { code } } }",
        app.token(org, Role.OWNER),
        input={"kind": "BALANCE_BELOW", "threshold": "5", "webhookUrl": url},
    )
    secret: str = body["data"]["createAlertRule"]["webhookSecret"]
    return secret


async def test_secrets_are_sealed_under_a_kept_development_key(
    settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    assert settings.key_encryption_key is None
    async with running_app(settings, clock) as app:
        org = await app.org("acme")
        endpoint = await create(app, org, receiver.url, ["PLAN_CHANGED"])
        rule_secret = await _alert_rule(app, org, receiver.url)
        await app.runtime.alerts.settled()
        await app.runtime.webhooks.settled()
        stored = await _stored(app)
        assert endpoint["webhookEndpoint"]["url"] in stored
        for secret in (endpoint["secret"], rule_secret):
            assert secret not in stored
            assert secret.removeprefix("whsec_") not in stored
    if settings.is_sqlite:  # the database's own bytes, its write-ahead log included
        files = Path(settings.database_url.removeprefix("sqlite+aiosqlite:///")).parent
        raw = b"".join(f.read_bytes() for f in files.glob("creditgraph.db*"))
        assert endpoint["secret"].encode() not in raw
        assert rule_secret.encode() not in raw
    key_file = settings.state_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_text().strip().encode())  # a Fernet key

    # Restarted, the kept key opens the secret: the endpoint's bodies verify as before.
    async with running_app(settings, clock) as app:
        await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint["webhookEndpoint"]["id"])
        await app.runtime.webhooks.settled()
    # The rule fired as it was made (a balance of 0 is below 5): signed with its secret.
    fired, tested = receiver.requests
    assert signed_by(rule_secret, fired)
    assert signed_by(endpoint["secret"], tested)


async def test_a_configured_key_is_used_and_production_requires_one(
    settings: Settings, clock: FrozenClock, receiver: Receiver, tmp_path: Path
) -> None:
    keyed = settings.model_copy(
        update={"key_encryption_key": Fernet.generate_key().decode(), "state_dir": tmp_path / "k"}
    )
    async with running_app(keyed, clock) as app:
        org = await app.org("acme")
        endpoint = await create(app, org, receiver.url, ["PLAN_CHANGED"])
        await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint["webhookEndpoint"]["id"])
        await app.runtime.webhooks.settled()
    assert signed_by(endpoint["secret"], receiver.requests[0])
    assert not (keyed.state_dir / KEY_FILE).exists()
    # A key other than the one the secret was sealed with: the delivery ends, saying why.
    other = keyed.model_copy(update={"key_encryption_key": Fernet.generate_key().decode()})
    async with running_app(other, clock) as app:
        await mutate(app, org, "SendTestWebhookEvent", endpointId=endpoint["webhookEndpoint"]["id"])
        await app.runtime.webhooks.settled()
        (newest, _) = deliveries((await endpoints(app, org))[0])
    assert newest["status"] == "FAILED"
    assert "cannot be decrypted" in newest["attempts"][0]["error"]
    assert len(receiver.requests) == 1

    production = settings.model_copy(update={"environment": "production"})
    with pytest.raises(ConfigurationError, match="CREDITGRAPH_KEY_ENCRYPTION_KEY"):
        await Runtime.start(production, clock)


async def test_private_addresses_need_the_setting_when_saved_and_when_sent(
    settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    strict = settings.model_copy(update={"alert_webhook_allow_private": False})
    async with running_app(strict, clock) as app:
        org = await app.org("acme")
        for url in (receiver.url, "http://localhost:8080/", "http://10.1.2.3/", "http://[::1]/"):
            assert codes(await create(app, org, url, ["PLAN_CHANGED"])) == [
                ("url", "INVALID_INPUT")
            ]
        allowed = await create(app, org, "https://hooks.example.com/creditgraph", ["PLAN_CHANGED"])
        assert allowed["userErrors"] == []
        moved = await mutate(
            app, org, "UpdateWebhookEndpoint", id=allowed["webhookEndpoint"]["id"], url=receiver.url
        )
        assert codes(moved) == [("url", "INVALID_INPUT")]
    # Saved while allowed, then sent by a server that does not allow it: refused by the
    # address it resolves to, before anything is sent.
    async with running_app(settings, clock) as app:
        saved = await create(app, org, receiver.url, ["PLAN_CHANGED"])
        assert saved["userErrors"] == []
    async with running_app(strict, clock) as app:
        await mutate(app, org, "SendTestWebhookEvent", endpointId=saved["webhookEndpoint"]["id"])
        await app.runtime.webhooks.settled()
        listed = await endpoints(app, org)
    (delivery,) = deliveries(listed[1])
    assert delivery["status"] == "PENDING"  # retried: an address can change
    (attempt,) = delivery["attempts"]
    assert attempt["statusCode"] is None
    assert attempt["error"].startswith("refused: 127.0.0.1 is not a public address")
    assert receiver.requests == []


async def test_a_delivery_connects_to_the_address_it_checked(
    app: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name resolves to the receiver when checked, elsewhere after; the
    body still goes to the address checked, naming the host in Host."""
    port = urlsplit(receiver.url).port
    lookups: list[str] = []
    real = asyncio.BaseEventLoop.getaddrinfo

    async def rebinding(self: asyncio.BaseEventLoop, host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.rebind.test":
            return await real(self, host, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", rebinding)
    org = await app.org("acme")
    saved = await create(app, org, f"http://hooks.rebind.test:{port}/hook", ["PLAN_CHANGED"])
    await mutate(app, org, "SendTestWebhookEvent", endpointId=saved["webhookEndpoint"]["id"])
    await app.runtime.webhooks.settled()

    (delivery,) = deliveries((await endpoints(app, org))[0])
    assert delivery["status"] == "DELIVERED", delivery
    assert lookups == ["hooks.rebind.test"]
    (received,) = receiver.requests
    assert received.headers["host"] == f"hooks.rebind.test:{port}"
