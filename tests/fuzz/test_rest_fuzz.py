"""The REST API fuzzed from its own OpenAPI document (schemathesis, on Hypothesis).

The app runs as the other tests run it (``running_app``: Stripe through the stand-in,
the demo's sign-in codes on), on an event loop of its own thread, seeded with an
organization that has keys (one capped, one revoked), top-ups (paid, refunded, failed
and pending), usage, an open hold and receipts, and with a second organization. Every
operation of ``GET /api/v1/openapi.json`` gets valid and invalid requests from each kind
of caller (none, forged, API key, service token, people's tokens of both organizations),
with the seeded ids, secrets, cursors and request ids mixed into what is generated, and
crafted ids and cursors (base64 of random text) too. Every answer must not be a 5xx,
have a documented status, content type and body, refuse a caller the document does not
list, and show nothing of the other organization. Stripe's webhook gets fuzzed bodies
with missing, forged and stale signatures (400, always) and correctly signed random
events (processed or refused, never a 5xx). After each engine's run the server still
answers and ``creditgraph verify`` finds the books matching the ledger.

The examples per operation are bounded (``CREDITGRAPH_FUZZ_EXAMPLES``, default 50) and
drawn from a fixed seed; a release runs more: ``CREDITGRAPH_FUZZ_EXAMPLES=1000``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
import stripe
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from app.api.rest.openapi import PATH, document
from app.auth import Role, issue_token
from app.clock import Clock
from app.ids import from_global_id, to_global_id
from app.keys.service import Caps
from app.money import parse_usd
from app.payments.stripe_events import events_t
from app.settings import Settings
from app.signin import SignInCodes
from app.statements.figures import Month
from tests import servers
from tests.conftest import JWT_SECRET, Harness, PostgresServer, redis_settings, running_app
from tests.payments import stripe_events
from tests.payments.conftest import WEBHOOK_SECRET, stripe_settings
from tests.payments.stripe_standin import StripeStandin
from tests.statements.test_receipts import receipts

EXAMPLES = int(os.environ.get("CREDITGRAPH_FUZZ_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the fixed seed: the same examples on every run
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
OPERATIONS = [
    (path, method) for path, item in document(Settings())["paths"].items() for method in item
]
TOP_UP = """
mutation ($input: CreateTopUpInput!) {
  createTopUp(input: $input) { topUp { id } userErrors { code message } }
}
"""
REFUND = """
mutation ($input: RefundTopUpInput!) {
  refundTopUp(input: $input) { userErrors { code message } }
}
"""


def _crafted_id(kind: str, raw: str) -> str:
    return base64.b64encode(f"{kind}:{raw}".encode()).decode()


def _crafted_cursor(parts: list[str]) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode()


# Times a client may send that are valid RFC 3339, at the ends of what Python can hold.
EDGE_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00Z",
]
# Global ids and cursors as this API makes them, around what it has made.
CRAFTED_IDS = st.builds(
    _crafted_id,
    st.sampled_from(["Receipt", "ApiKey", "Organization", "BillingTransaction"]),
    st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.text(max_size=30)),
)
CURSOR_PART = st.one_of(
    st.sampled_from([*EDGE_TIMES, "2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=20),
)
CRAFTED_CURSORS = st.builds(_crafted_cursor, st.lists(CURSOR_PART, min_size=1, max_size=3))


# Strings that have broken servers: NUL (PostgreSQL refuses it in text), digits int()
# refuses, formulas, a right-to-left override, whitespace only, too long.
NAUGHTY = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "²",
        "\u0663",
        "\U0001d7d8",
        "=1+1",
        "\u202e",
        " ",
        "\t",
        "",
        "x" * 201,
        "x" * 5000,
    ]
)


@dataclass
class Seeds:
    """What the seeding made: values the fuzzer mixes into requests, by field name."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    # Who calls: a name, its headers, and its kind as the document's security names it.
    callers: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    # What must never show in an answer to the first organization's callers.
    other_org_id: str = ""
    other_secret: str = ""
    pending_intents: list[dict[str, Any]] = field(default_factory=list)
    top_up_ids: list[int] = field(default_factory=list)
    # Events as Stripe would send them about the seeded payments, for mutating.
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Target:
    portal: BlockingPortal
    harness: Harness
    standin: StripeStandin
    schema: Any
    seeds: Seeds
    env: dict[str, str]

    def send(
        self,
        case: Any,
        headers: dict[str, str],
        *,
        sign: str | None = None,
        signed_at: int | None = None,
    ) -> Any:
        """``case`` sent through the app's ASGI client on its loop, with ``headers`` (a
        caller's); ``sign``: the secret to sign the exact body with, Stripe's way (at
        ``signed_at``, else now)."""
        kwargs = case.as_transport_kwargs(base_url="http://test")
        content = kwargs.get("data")
        if "json" in kwargs:
            content = json.dumps(kwargs["json"]).encode()
        if isinstance(content, str):
            content = content.encode()
        sent = {str(k): str(v) for k, v in kwargs["headers"].items()} | headers
        if sign is not None:
            sent["Stripe-Signature"] = stripe_events.sign(content or b"", sign, signed_at)
        request = self.harness.http.build_request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in sent.items()],
            content=content,
        )
        response = self.portal.call(self._send, request)
        return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self.harness.http.send(request)
        await response.aread()
        return response


def _token(slug: str, role: Role, *, secret: str = JWT_SECRET, ttl: float = 3600) -> str:
    return issue_token(
        secret, org=slug, role=role, subject=f"{role}@fuzz", ttl=timedelta(seconds=ttl)
    )


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def _seed(h: Harness, standin: StripeStandin, codes: SignInCodes) -> Seeds:
    """An organization in use, and another beside it."""
    seeds = Seeds()
    org = await h.org("acme", grant_usd="50")
    other = await h.org("beta", grant_usd="10")
    key = await h.key(org)
    capped = await h.key(org, caps=Caps(quota=parse_usd("0.01")), group="capped")
    revoked = await h.key(org)
    await h.revoke(org, revoked)
    other_key = await h.key(other)
    owner = h.token(org, Role.OWNER)

    async def top_up(usd: str, headers: dict[str, str] = owner) -> tuple[str, dict[str, Any]]:
        body = await h.graphql(TOP_UP, headers, input={"amountUsd": usd})
        assert body["data"]["createTopUp"]["userErrors"] == [], body
        top_up_id = body["data"]["createTopUp"]["topUp"]["id"]
        seeds.top_up_ids.append(from_global_id(top_up_id, "BillingTransaction"))
        return top_up_id, standin.objects_of("payment_intent")[-1]

    async def webhook(evt: dict[str, Any]) -> None:
        payload = stripe_events.body(evt)
        response = await h.http.post(
            "/webhooks/stripe",
            content=payload,
            headers={"Stripe-Signature": stripe_events.sign(payload, WEBHOOK_SECRET)},
        )
        assert response.status_code == 200, response.text

    paid, intent = await top_up("100")
    await webhook(
        stripe_events.event(
            "payment_intent.succeeded", standin.succeed_payment_intent(intent["id"])
        )
    )
    refunded = await h.graphql(REFUND, owner, input={"topUpId": paid, "amountUsd": "10"})
    assert refunded["data"]["refundTopUp"]["userErrors"] == [], refunded
    _, intent = await top_up("25")
    await webhook(
        stripe_events.event(
            "payment_intent.payment_failed", standin.fail_payment_intent(intent["id"])
        )
    )
    for usd in ("5", "7.5"):  # left pending: the signed events may settle them
        _, intent = await top_up(usd)
        seeds.pending_intents.append(intent)
    paid_intent = standin.objects_of("payment_intent")[0]
    now = int(time.time())
    seeds.events = [
        *(
            build(intent["id"], amount=intent["amount"], top_up_id=seeds.top_up_ids[-2 + i])
            for i, intent in enumerate(seeds.pending_intents)
            for build in (
                stripe_events.payment_intent_succeeded,
                stripe_events.payment_intent_payment_failed,
            )
        ),
        stripe_events.checkout_session_completed(
            amount=500,
            payment_intent_id=seeds.pending_intents[0]["id"],
            top_up_id=seeds.top_up_ids[-2],
        ),
        stripe_events.charge_refunded(
            payment_intent_id=paid_intent["id"], amount=10_000, amount_refunded=2_000
        ),
        stripe_events.invoice_paid(
            stripe_events.invoice(
                subscription_id="sub_fuzz",
                amount_paid=2_000,
                period_start=now,
                period_end=now + 28 * 86400,
                organization_id=org.id,
                plan_code="bytez-platinum",
            )
        ),
    ]
    events = [
        {
            "request_id": f"billed-{i}",
            "api_key_id": to_global_id("ApiKey", key.id),
            "model": "claude-sonnet-4-6",
            "prompt_tokens": 1000 * i,
            "completion_tokens": 10,
            "tags": {"team": "=cmd|' /C calc'!A0"},
        }
        for i in range(1, 4)
    ] + [
        {
            "request_id": "failed-1",
            "api_key_id": to_global_id("ApiKey", key.id),
            "model": "gpt-5-5",
            "status": "failed",
        }
    ]
    await h.usage(org, *events)
    held = await h.authorize(key, "held-1", hold_usd="1")
    assert held.status_code == 200, held.text

    own = [r["id"] for r in await receipts(h, org)]
    others = h.token(other, Role.OWNER)
    _, intent = await top_up("5", others)
    await webhook(
        stripe_events.event(
            "payment_intent.succeeded", standin.succeed_payment_intent(intent["id"])
        )
    )
    theirs = [r["id"] for r in await receipts(h, other)]
    assert own
    assert theirs

    cursors = []
    for path in ("/api/v1/me/usage", "/api/v1/me/billing/transactions"):
        page = (await h.http.get(path, params={"limit": 1}, headers=owner)).json()
        cursors.append(page["next_cursor"])
    months = [Month.of(h.runtime.clock.now())]
    seeds.values = {
        # The seeded key most: past it is where a call does anything.
        "api_key": [key.secret] * 4 + [capped.secret, revoked.secret, other_key.secret],
        "api_key_id": [
            to_global_id("ApiKey", k.id) for k in (key, key, capped, revoked, other_key)
        ],
        "request_id": ["billed-1", "failed-1", "held-1", f"fresh-{uuid.uuid4().hex}"],
        "model": ["claude-sonnet-4-6", "gpt-5-5", "claude-haiku-4-5"],
        "cursor": [c for c in cursors if c],
        "id": own + theirs,
        "month": [str(m) for m in months] + ["1970-01", "9999-12", "2026-00"],
        "code": [codes.new() for _ in range(3)] + ["used-or-unknown"],
        "since": EDGE_TIMES,
        "until": EDGE_TIMES,
        "occurred_at": EDGE_TIMES,
    }
    api_key = "apiKey"
    seeds.callers = [
        ("none", {}, None),
        ("garbage", {"Authorization": "Basic Zm9vOmJhcg=="}, None),
        ("forged JWT", _bearer(_token("acme", Role.OWNER, secret="x" * 40)), None),
        ("expired JWT", _bearer(_token("acme", Role.OWNER, ttl=-60)), None),
        ("unknown org", _bearer(_token("nobody", Role.OWNER)), None),
        ("revoked key", _bearer(revoked.secret), None),
        ("api key", _bearer(key.secret), api_key),
        ("api key header", {"x-api-key": key.secret}, "apiKeyHeader"),
        ("capped key", _bearer(capped.secret), api_key),
        ("service", _bearer(_token("acme", Role.SERVICE)), "bearer:service"),
        ("owner", owner, "bearer:owner"),
        ("viewer", h.token(org, Role.VIEWER), "bearer:viewer"),
        ("other owner", others, "bearer:owner:other"),
    ]
    seeds.other_org_id = to_global_id("Organization", other.id)
    seeds.other_secret = other_key.secret
    return seeds


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp(request.param)
    engine: dict[str, Any] = {}
    pg: tuple[PostgresServer, str] | None = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'creditgraph.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        pg = server, server.fresh()
        url, engine = server.url_of(pg[1]), redis_settings()
    base = Settings(
        database_url=url, state_dir=tmp / "state", jwt_secret=JWT_SECRET, run_jobs=False, **engine
    )
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    try:
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(StripeStandin().serve()) as standin,
        ):
            codes = SignInCodes(JWT_SECRET, Clock(), org="acme", subject="owner@demo")
            app = running_app(stripe_settings(base, standin), Clock(), sign_in=codes)
            with portal.wrap_async_context_manager(app) as harness:
                harness.http.event_hooks = {"response": []}  # the checks say what a 5xx was
                seeds = portal.call(_seed, harness, standin, codes)
                served = portal.call(harness.http.get, PATH)
                schema = schemathesis.openapi.from_dict(served.json())
                env = servers.environment(url, tmp / "state")
                yield Target(portal, harness, standin, schema, seeds, env)
    finally:
        monkeypatch.undo()
        if pg is not None:
            pg[0].drop(pg[1])


def _accepts(operation: Any) -> set[str]:
    """The caller kinds the document lists for ``operation``."""
    kinds = set()
    for requirement in operation.definition.raw.get("security", []):
        for scheme, roles in requirement.items():
            kinds.update([f"{scheme}:{role}" for role in roles] or [scheme])
    return kinds


def _mix(
    data: st.DataObject, container: Any, seeded: dict[str, list[Any]], *, naughty: bool = True
) -> None:
    """Swap some of ``container``'s fields (at any depth) for seeded values, and (unless
    it is a path's, where httpx refuses them) some of its strings for naughty ones."""
    items = enumerate(container) if isinstance(container, list) else None
    if isinstance(container, dict):
        items = iter(list(container.items()))
    for name, value in items or ():
        how = data.draw(
            st.sampled_from(["keep", "seeded", "seeded", "naughty"][: 4 if naughty else 3])
        )
        if how == "seeded" and seeded.get(name):
            container[name] = data.draw(st.sampled_from(seeded[name]))
        elif how == "naughty" and isinstance(value, str):
            container[name] = data.draw(NAUGHTY)
        else:
            _mix(data, value, seeded, naughty=naughty)


@pytest.mark.parametrize(
    ("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS]
)
def test_every_operation(target: Target, path: str, method: str) -> None:
    operation = target.schema[path][method.upper()]
    accepts = _accepts(operation)
    seeds = target.seeds
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    negative = operation.as_strategy(GenerationMode.NEGATIVE)
    callers = st.sampled_from(seeds.callers)
    accepted = [
        c for c in seeds.callers if c[2] is not None and c[2].removesuffix(":other") in accepts
    ]
    if accepted:
        callers = st.one_of(callers, st.sampled_from(accepted))

    @FUZZ
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
        case = data.draw(positive if mode.is_positive else negative)
        if mode.is_positive:
            crafted = {"id": CRAFTED_IDS, "cursor": CRAFTED_CURSORS}
            for name, strategy in crafted.items():
                if name in case.path_parameters or name in (case.query or {}):
                    holder = case.path_parameters if name in case.path_parameters else case.query
                    if data.draw(st.booleans()):
                        holder[name] = data.draw(strategy)
            _mix(data, case.path_parameters, seeds.values, naughty=False)
            for container in (case.query, case.body):
                _mix(data, container, seeds.values)
        name, headers, kind = data.draw(callers)
        response = target.send(case, headers)
        case.validate_response(response, checks=CHECKS)
        if accepts and (kind is None or kind.removesuffix(":other") not in accepts):
            assert response.status_code in (401, 403), f"{name} was let in: {response.text}"
        theirs = name == "other owner" or seeds.other_secret in json.dumps(case.body, default=str)
        if not theirs:
            assert seeds.other_org_id not in response.text, "the other organization showed"

    fuzz()


def test_stripe_webhook_refuses_what_is_not_signed(target: Target) -> None:
    """Fuzzed bodies with no, a garbled, a forged or a stale signature, or one for
    another body: 400, and not even recorded."""
    operation = target.schema["/webhooks/stripe"]["POST"]
    recorded = target.portal.call(_recorded_events, target.harness)
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @FUZZ
    @given(
        case=cases, how=st.sampled_from(["missing", "generated", "forged", "stale", "other body"])
    )
    def fuzz(case: Any, how: str) -> None:
        headers: dict[str, str] = {}
        sign, signed_at = None, None
        if how == "missing":
            case.headers.pop("Stripe-Signature", None)
        elif how == "forged":
            sign = "whsec_forged"
        elif how == "stale":
            sign, signed_at = WEBHOOK_SECRET, int(time.time()) - 3600
        elif how == "other body":
            headers["Stripe-Signature"] = stripe_events.sign(b'{"id": "evt_1"}', WEBHOOK_SECRET)
        response = target.send(case, headers, sign=sign, signed_at=signed_at)
        case.validate_response(response, checks=CHECKS)
        assert response.status_code == 400, response.text

    fuzz()
    assert target.portal.call(_recorded_events, target.harness) == recorded


async def _recorded_events(h: Harness) -> int:
    async with h.runtime.db.reader.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(events_t)) or 0)


HUGE = st.integers(min_value=-(2**70), max_value=2**70)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.just([]) | st.just({}),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, min_size=1, max_size=3)
    ),
    max_leaves=8,
)
EVENT_TYPES = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "invoice.paid",
    "customer.subscription.updated",
    "customer.subscription.deleted",
]


def _events(seeds: Seeds) -> st.SearchStrategy[dict[str, Any]]:
    """Stripe-shaped events about the seeded payments and about nothing, every field
    sometimes of the wrong type or out of range."""
    intents = [i["id"] for i in seeds.pending_intents]
    amounts = [i["amount"] for i in seeds.pending_intents]
    top_up_id = st.one_of(
        st.sampled_from([str(i) for i in seeds.top_up_ids]),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),  # "²", "٣"
        JSON,
    )
    unix = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), JSON)
    period = st.fixed_dictionaries({}, optional={"start": unix, "end": unix})
    lines = st.fixed_dictionaries(
        {}, optional={"data": st.lists(st.fixed_dictionaries({"period": period}), max_size=1)}
    )
    cents = st.one_of(
        st.sampled_from(amounts), st.integers(min_value=-(2**70), max_value=2**70), JSON
    )
    obj = st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.sampled_from(intents), st.text(max_size=30), JSON),
            "object": st.one_of(
                st.sampled_from(["payment_intent", "checkout.session", "charge"]), JSON
            ),
            "amount": cents,
            "amount_total": cents,
            "amount_refunded": cents,
            "currency": st.one_of(st.just("usd"), JSON),
            "metadata": st.one_of(
                st.fixed_dictionaries({}, optional={"creditgraph_top_up_id": top_up_id}), JSON
            ),
            "payment_intent": st.one_of(st.sampled_from(intents), JSON),
            "payment_method": st.one_of(st.just("pm_card_visa"), JSON),
            "payment_status": st.one_of(st.sampled_from(["paid", "unpaid"]), JSON),
            "mode": st.one_of(st.sampled_from(["payment", "subscription"]), JSON),
            "invoice": JSON,
            "status": JSON,
            "cancel_at_period_end": JSON,
            "last_payment_error": JSON,
            "automatic_tax": st.one_of(st.just({"enabled": True}), JSON),
            "total_details": st.one_of(st.fixed_dictionaries({"amount_tax": cents}), JSON),
            # An invoice's (invoice.paid), in the shape before API version 2025-03-31.
            "subscription": st.one_of(st.just("sub_fuzz"), JSON),
            "amount_paid": cents,
            "lines": st.one_of(lines, JSON),
            "subscription_details": st.one_of(
                st.fixed_dictionaries(
                    {"metadata": st.fixed_dictionaries({"creditgraph_organization_id": top_up_id})}
                ),
                JSON,
            ),
        },
    )
    return st.fixed_dictionaries(
        {
            "id": st.text(max_size=300).map(lambda text: f"{text}{uuid.uuid4().hex}"),
            "object": st.just("event"),
            "type": st.one_of(st.sampled_from(EVENT_TYPES), st.text(max_size=120)),
            "data": st.fixed_dictionaries({"object": st.one_of(obj, JSON)}),
        }
    )


@st.composite
def _mutated(draw: st.DrawFn, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One of ``events`` (a fresh copy, most often with an id of its own) with a few of
    its fields, at any depth, deleted or swapped for junk."""
    evt = copy.deepcopy(draw(st.sampled_from(events)))
    if draw(st.integers(0, 9)):  # else a delivery again, answered as a duplicate
        evt["id"] = f"evt_{uuid.uuid4().hex}"
    for _ in range(draw(st.integers(1, 4))):
        fields = list(_fields(evt["data"]))
        if not fields:
            break
        container, key = draw(st.sampled_from(fields))
        if draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(st.one_of(JSON, HUGE, st.sampled_from(["²", "-1", "0"])))
    return evt


def _fields(value: Any) -> Iterator[tuple[Any, Any]]:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in list(items):
        yield value, key
        if isinstance(item, dict | list) and item:
            yield from _fields(item)


# What a field of a signed event is swapped for, one at a time (DELETE: taken out).
DELETE = object()
SWAPS = [DELETE, None, "", "²", -1, 2**40, 2**63, 1.5, True, {}, ["x"]]


def test_stripe_webhook_takes_each_event_with_a_field_missing_or_wrong(target: Target) -> None:
    """Each seeded event with each of its fields, at any depth, taken out or of another
    type, signed: processed or ignored, never a 5xx; the books still match."""
    operation = target.schema["/webhooks/stripe"]["POST"]
    for template in target.seeds.events:
        for index in range(len(list(_fields(template["data"])))):
            for swap in SWAPS:
                evt = copy.deepcopy(template)
                evt["id"] = f"evt_{uuid.uuid4().hex}"
                copied, name = list(_fields(evt["data"]))[index]
                if swap is DELETE:
                    del copied[name]
                else:
                    copied[name] = swap
                case = operation.Case(body=evt, media_type="application/json")
                response = target.send(case, {}, sign=WEBHOOK_SECRET)
                case.validate_response(response, checks=CHECKS)
                assert response.status_code in (200, 400), (evt, response.text)
    assert target.portal.call(target.harness.books) == []


def test_stripe_webhook_takes_signed_random_events(target: Target) -> None:
    """Correctly signed events of every kind about seeded and unknown payments: each is
    processed or ignored (200), or is not an event (400); never a 5xx."""
    operation = target.schema["/webhooks/stripe"]["POST"]

    @FUZZ
    @given(event=st.one_of(_events(target.seeds), _mutated(target.seeds.events)))
    def fuzz(event: dict[str, Any]) -> None:
        case = operation.Case(body=event, media_type="application/json")
        response = target.send(case, {}, sign=WEBHOOK_SECRET)
        case.validate_response(response, checks=CHECKS)
        assert response.status_code in (200, 400), response.text

    fuzz()
    assert target.portal.call(target.harness.books) == []


def test_after_it_all_the_server_answers_and_the_books_match(target: Target) -> None:
    """Last in the module, after every fuzzed request on this engine."""
    assert target.portal.call(target.harness.http.get, "/readyz").status_code == 200
    verified = servers.verify(target.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok:")
