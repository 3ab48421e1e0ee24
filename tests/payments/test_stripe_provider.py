"""StripeProvider through the real ``stripe`` library, against the local stand-in: what
Stripe receives (parameters and idempotency keys), how its answers become ``Checkout`` and
``Payment``, and that no Stripe error escapes. Also: the test webhooks' signatures verify
with the library's own check."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest
import stripe

from app.payments.provider import Card, Checkout, Payment, PaymentError
from app.payments.stripe_provider import NEEDS_AUTHENTICATION, UNREACHABLE, StripeProvider
from app.settings import Settings
from tests.payments import stripe_events as events
from tests.payments.stripe_standin import RecordedRequest, StripeStandin

ORG = 7
TOP_UP = 41
META = {"creditgraph_top_up_id": "41", "creditgraph_organization_id": "7"}
KEY = "creditgraph-top-up-41"
SUCCESS_URL = "https://app.test/paid?top_up={top_up_id}&session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://app.test/top-ups/{top_up_id}"
PLAN_URL = "https://app.test/plans/{plan_code}"


@asynccontextmanager
async def _provider(
    standin: StripeStandin, flow: Literal["elements", "checkout"]
) -> AsyncIterator[StripeProvider]:
    provider = StripeProvider(
        standin.secret_key,
        api_base=standin.url,
        flow=flow,
        success_url=SUCCESS_URL,
        cancel_url=CANCEL_URL,
        plan_success_url=PLAN_URL,
        plan_cancel_url=PLAN_URL,
    )
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def provider(stripe_standin: StripeStandin) -> AsyncIterator[StripeProvider]:
    async with _provider(stripe_standin, "elements") as elements:
        yield elements


@pytest.fixture
async def checkout_provider(stripe_standin: StripeStandin) -> AsyncIterator[StripeProvider]:
    async with _provider(stripe_standin, "checkout") as checkout:
        yield checkout


async def _customer(provider: StripeProvider) -> str:
    return await provider.create_customer(organization_id=ORG, name="Acme")


async def _start(provider: StripeProvider, customer: str, amount_cents: int = 2500) -> Checkout:
    return await provider.start_payment(
        top_up_id=TOP_UP, organization_id=ORG, customer_id=customer, amount_cents=amount_cents
    )


async def _charge(
    provider: StripeProvider, customer: str, card: str = "pm_card_visa", top_up_id: int = TOP_UP
) -> Payment:
    return await provider.charge_saved(
        top_up_id=top_up_id,
        organization_id=ORG,
        customer_id=customer,
        payment_method_id=card,
        amount_cents=1000,
    )


def _posts(standin: StripeStandin, path: str) -> list[RecordedRequest]:
    return [r for r in standin.requests if r.method == "POST" and r.path == path]


# -- customers and starting a payment --------------------------------------------------------


async def test_customer_is_created_once_per_organization(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    first = await _customer(provider)
    again = await _customer(provider)

    assert again == first
    [customer] = stripe_standin.objects_of("customer")
    assert customer["id"] == first
    assert customer["name"] == "Acme"
    assert customer["metadata"] == {"creditgraph_organization_id": "7"}
    sent, retried = _posts(stripe_standin, "/v1/customers")
    assert sent.idempotency_key == retried.idempotency_key == "creditgraph-customer-7"
    assert (sent.replayed, retried.replayed) == (False, True)


async def test_elements_payment_is_a_payment_intent_saving_the_card(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    customer = await _customer(provider)
    checkout = await _start(provider, customer)

    [intent] = stripe_standin.objects_of("payment_intent")
    assert checkout == Checkout(intent["id"], None, intent["client_secret"], None)
    assert checkout.client_secret is not None
    assert checkout.client_secret.startswith(f"{intent['id']}_secret_")
    [sent] = _posts(stripe_standin, "/v1/payment_intents")
    assert sent.idempotency_key == KEY
    assert sent.params == {
        "amount": "2500",
        "currency": "usd",
        "customer": customer,
        "setup_future_usage": "off_session",
        "automatic_payment_methods": {"enabled": "true"},
        "metadata": META,
    }


async def test_retried_start_returns_the_same_payment(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    customer = await _customer(provider)
    first = await _start(provider, customer)
    again = await _start(provider, customer)

    assert again == first
    assert len(stripe_standin.objects_of("payment_intent")) == 1
    sent, retried = _posts(stripe_standin, "/v1/payment_intents")
    assert sent.idempotency_key == retried.idempotency_key == KEY
    assert retried.replayed


async def test_reused_top_up_with_another_amount_is_refused(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    customer = await _customer(provider)
    await _start(provider, customer, 2500)

    with pytest.raises(PaymentError) as refused:
        await _start(provider, customer, 9900)
    assert "same parameters" in refused.value.message
    assert len(stripe_standin.objects_of("payment_intent")) == 1


async def test_checkout_payment_is_a_hosted_session(
    checkout_provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    customer = await _customer(checkout_provider)
    checkout = await _start(checkout_provider, customer)

    [session] = stripe_standin.objects_of("checkout.session")
    assert checkout == Checkout(
        None, session["id"], None, f"https://checkout.stripe.test/c/pay/{session['id']}"
    )
    assert session["id"].startswith("cs_test_")
    assert stripe_standin.objects_of("payment_intent") == []
    [sent] = _posts(stripe_standin, "/v1/checkout/sessions")
    assert sent.idempotency_key == KEY
    assert sent.params == {
        "mode": "payment",
        "customer": customer,
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "2500",
                    "product_data": {"name": "Credits"},
                },
                "quantity": "1",
            }
        ],
        "payment_intent_data": {"setup_future_usage": "off_session", "metadata": META},
        "metadata": META,
        "client_reference_id": "41",
        # Stripe's own placeholder is left for Stripe to fill in.
        "success_url": "https://app.test/paid?top_up=41&session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.test/top-ups/41",
    }

    again = await _start(checkout_provider, customer)
    assert again == checkout
    assert len(stripe_standin.objects_of("checkout.session")) == 1
    assert [r.idempotency_key for r in _posts(stripe_standin, "/v1/checkout/sessions")] == [
        KEY,
        KEY,
    ]


async def test_from_settings(stripe_standin: StripeStandin) -> None:
    settings = Settings(
        stripe_secret_key=stripe_standin.secret_key,
        stripe_api_base=stripe_standin.url,
        top_up_flow="checkout",
        checkout_success_url="https://app.test/ok/{top_up_id}",
        checkout_cancel_url="https://app.test/no/{top_up_id}",
    )
    provider = StripeProvider.from_settings(settings)
    try:
        checkout = await _start(provider, await _customer(provider))
    finally:
        await provider.close()

    assert checkout.checkout_url is not None
    [session] = stripe_standin.objects_of("checkout.session")
    assert (session["success_url"], session["cancel_url"]) == (
        "https://app.test/ok/41",
        "https://app.test/no/41",
    )
    with pytest.raises(ValueError, match="SECRET_KEY"):
        StripeProvider.from_settings(Settings())


# -- off-session charges ----------------------------------------------------------------------


async def test_saved_card_charge_succeeds(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    customer = await _customer(provider)
    payment = await _charge(provider, customer)

    [intent] = stripe_standin.objects_of("payment_intent")
    # The card from the charge, expanded in the answer: what the receipt shows.
    assert payment == Payment("succeeded", intent["id"], "pm_card_visa", card=Card("visa", "4242"))
    assert intent["status"] == "succeeded"
    [sent] = _posts(stripe_standin, "/v1/payment_intents")
    assert sent.idempotency_key == KEY
    assert sent.params == {
        "amount": "1000",
        "currency": "usd",
        "customer": customer,
        "payment_method": "pm_card_visa",
        "off_session": "true",
        "confirm": "true",
        "metadata": META,
        "expand": ["latest_charge"],
    }


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        ("pm_card_chargeDeclined", "Your card was declined."),
        ("pm_card_chargeDeclinedInsufficientFunds", "Your card has insufficient funds."),
        (
            "pm_card_authenticationRequired",
            "Your card was declined. This transaction requires authentication.",
        ),
    ],
)
async def test_saved_card_decline_is_a_failed_payment(
    provider: StripeProvider, stripe_standin: StripeStandin, card: str, reason: str
) -> None:
    customer = await _customer(provider)
    payment = await _charge(provider, customer, card)

    [intent] = stripe_standin.objects_of("payment_intent")
    assert payment == Payment("failed", intent["id"], None, reason)
    assert intent["status"] == "requires_payment_method"
    [sent] = _posts(stripe_standin, "/v1/payment_intents")
    assert sent.status == 402

    # A retry gets Stripe's saved answer: the same decline, no second attempt.
    assert await _charge(provider, customer, card) == payment
    assert len(stripe_standin.objects_of("payment_intent")) == 1


async def test_saved_card_needing_authentication_fails(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    stripe_standin.outcomes["pm_card_3ds"] = "requires_action"
    payment = await _charge(provider, await _customer(provider), "pm_card_3ds")

    [intent] = stripe_standin.objects_of("payment_intent")
    assert payment == Payment("failed", intent["id"], None, NEEDS_AUTHENTICATION)


async def test_saved_card_charge_still_processing_is_pending(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    stripe_standin.outcomes["pm_bank_debit"] = "processing"
    payment = await _charge(provider, await _customer(provider), "pm_bank_debit")

    [intent] = stripe_standin.objects_of("payment_intent")
    assert payment == Payment("pending", intent["id"])


# -- refunds ------------------------------------------------------------------------------------


async def test_refunds_report_the_charges_running_total(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    paid = await _charge(provider, await _customer(provider))
    assert paid.payment_intent_id is not None
    intent_id = paid.payment_intent_id

    async def refund(amount_cents: int, refunded_cents: int, key: str) -> int:
        return await provider.refund(
            payment_intent_id=intent_id,
            amount_cents=amount_cents,
            refunded_cents=refunded_cents,
            key=key,
        )

    assert await refund(300, 0, "refund-1") == 300
    assert await refund(200, 300, "refund-2") == 500
    # Retried: Stripe replays the refund, and the charge's total does not move.
    assert await refund(200, 300, "refund-2") == 500

    assert len(stripe_standin.objects_of("refund")) == 2
    assert [r.idempotency_key for r in _posts(stripe_standin, "/v1/refunds")] == [
        "refund-1",
        "refund-2",
        "refund-2",
    ]
    assert _posts(stripe_standin, "/v1/refunds")[0].params == {
        "payment_intent": intent_id,
        "amount": "300",
    }
    [charge] = stripe_standin.objects_of("charge")
    assert charge["amount_refunded"] == 500


async def test_refund_beyond_the_payment_is_refused(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    paid = await _charge(provider, await _customer(provider))
    assert paid.payment_intent_id is not None

    with pytest.raises(PaymentError) as refused:
        await provider.refund(
            payment_intent_id=paid.payment_intent_id,
            amount_cents=1001,
            refunded_cents=0,
            key="refund-1",
        )
    assert refused.value.code == "amount_too_large"
    assert "greater than unrefunded amount" in refused.value.message
    assert stripe_standin.objects_of("refund") == []


# -- where a payment stands -------------------------------------------------------------------


async def _intent_payment(
    provider: StripeProvider, stripe_standin: StripeStandin, act: Callable[[str], Any]
) -> tuple[str, Payment]:
    checkout = await _start(provider, await _customer(provider))
    assert checkout.payment_intent_id is not None
    act(checkout.payment_intent_id)
    found = await provider.payment(
        payment_intent_id=checkout.payment_intent_id, checkout_session_id=None
    )
    return checkout.payment_intent_id, found


async def test_payment_intent_awaiting_the_payer_is_pending(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    intent_id, found = await _intent_payment(provider, stripe_standin, lambda _: None)
    assert found == Payment("pending", intent_id)


async def test_payment_intent_succeeded(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    def pay(intent_id: str) -> None:
        stripe_standin.succeed_payment_intent(intent_id, "pm_card_mastercard")

    intent_id, found = await _intent_payment(provider, stripe_standin, pay)
    card = Card("mastercard", "4444")  # its charge's, for the receipt
    assert found == Payment("succeeded", intent_id, "pm_card_mastercard", card=card)


async def test_payment_intent_declined(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    def decline(intent_id: str) -> None:
        stripe_standin.fail_payment_intent(intent_id, message="Your card has expired.")

    intent_id, found = await _intent_payment(provider, stripe_standin, decline)
    assert found == Payment("failed", intent_id, None, "Your card has expired.")


async def test_payment_intent_canceled(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    intent_id, found = await _intent_payment(
        provider, stripe_standin, stripe_standin.cancel_payment_intent
    )
    assert found == Payment("failed", intent_id, None, "canceled")


async def test_unknown_payment_intent_is_a_payment_error(provider: StripeProvider) -> None:
    with pytest.raises(PaymentError) as refused:
        await provider.payment(payment_intent_id="pi_missing", checkout_session_id=None)
    assert refused.value.code == "resource_missing"
    assert "pi_missing" in refused.value.message


async def _session_payment(
    provider: StripeProvider, act: Callable[[str], Any]
) -> tuple[str, Payment]:
    checkout = await _start(provider, await _customer(provider))
    assert checkout.checkout_session_id is not None
    act(checkout.checkout_session_id)
    found = await provider.payment(
        payment_intent_id=None, checkout_session_id=checkout.checkout_session_id
    )
    return checkout.checkout_session_id, found


async def test_open_checkout_is_pending(checkout_provider: StripeProvider) -> None:
    _, found = await _session_payment(checkout_provider, lambda _: None)
    assert found == Payment("pending", None)


async def test_paid_checkout_succeeded_with_its_card(
    checkout_provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    def pay(session_id: str) -> None:
        stripe_standin.pay_checkout_session(session_id, "pm_card_amex")

    _, found = await _session_payment(checkout_provider, pay)
    [intent] = stripe_standin.objects_of("payment_intent")
    assert found == Payment("succeeded", intent["id"], "pm_card_amex", card=Card("amex", "8431"))
    assert intent["metadata"] == META
    assert intent["setup_future_usage"] == "off_session"


async def test_checkout_paid_by_a_slow_method_is_pending(
    checkout_provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    def submit(session_id: str) -> None:
        stripe_standin.pay_checkout_session(session_id, "pm_usBankAccount", paid=False)

    _, found = await _session_payment(checkout_provider, submit)
    [intent] = stripe_standin.objects_of("payment_intent")
    assert found == Payment("pending", intent["id"])


async def test_expired_checkout_failed(
    checkout_provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    _, found = await _session_payment(checkout_provider, stripe_standin.expire_checkout_session)
    assert found == Payment("failed", None, None, "checkout expired")


# -- Stripe unavailable -------------------------------------------------------------------------


async def test_outage_is_a_payment_error_and_creates_nothing(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    stripe_standin.fail_next(3)  # the first try and the library's two retries

    with pytest.raises(PaymentError) as failed:
        await _customer(provider)
    assert (failed.value.message, failed.value.code) == (UNREACHABLE, "provider_unavailable")
    assert stripe_standin.objects_of("customer") == []
    assert [(r.status, r.idempotency_key) for r in stripe_standin.requests] == [
        (500, "creditgraph-customer-7")
    ] * 3


async def test_brief_outage_is_retried_with_the_same_key(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    customer = await _customer(provider)
    stripe_standin.fail_next(1)

    checkout = await _start(provider, customer)

    [intent] = stripe_standin.objects_of("payment_intent")
    assert checkout.payment_intent_id == intent["id"]
    posts = _posts(stripe_standin, "/v1/payment_intents")
    assert [(r.status, r.idempotency_key) for r in posts] == [(500, KEY), (200, KEY)]


async def test_decline_during_outage_is_not_mistaken_for_a_decline(
    provider: StripeProvider, stripe_standin: StripeStandin
) -> None:
    customer = await _customer(provider)
    stripe_standin.fail_next(3, status=503)

    with pytest.raises(PaymentError, match="could not be reached"):
        await _charge(provider, customer, "pm_card_chargeDeclined")
    assert stripe_standin.objects_of("payment_intent") == []


async def test_wrong_secret_key_is_a_payment_error(stripe_standin: StripeStandin) -> None:
    provider = StripeProvider(
        "sk_test_wrong",
        api_base=stripe_standin.url,
        flow="elements",
        success_url=SUCCESS_URL,
        cancel_url=CANCEL_URL,
        plan_success_url=PLAN_URL,
        plan_cancel_url=PLAN_URL,
    )
    try:
        with pytest.raises(PaymentError) as failed:
            await _customer(provider)
    finally:
        await provider.close()
    assert failed.value.code == "provider_unavailable"
    assert [r.status for r in stripe_standin.requests] == [401]


async def test_unreachable_stripe_is_a_payment_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = StripeProvider(
        "sk_test_x",
        api_base=f"http://127.0.0.1:{port}",
        flow="elements",
        success_url=SUCCESS_URL,
        cancel_url=CANCEL_URL,
        plan_success_url=PLAN_URL,
        plan_cancel_url=PLAN_URL,
    )
    try:
        with pytest.raises(PaymentError) as failed:
            await provider.payment(payment_intent_id="pi_1", checkout_session_id=None)
    finally:
        await provider.close()
    assert (failed.value.message, failed.value.code) == (UNREACHABLE, "provider_unavailable")


# -- webhook events -----------------------------------------------------------------------------

SECRET = "whsec_test_secret"

OURS: dict[str, Any] = {"top_up_id": TOP_UP, "organization_id": ORG}
SESSION: dict[str, Any] = {"amount": 2500, "payment_intent_id": "pi_1"} | OURS

BUILDERS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    (
        "payment_intent.succeeded",
        lambda: events.payment_intent_succeeded("pi_1", amount=2500, **OURS),
    ),
    (
        "payment_intent.payment_failed",
        lambda: events.payment_intent_payment_failed("pi_1", amount=2500, **OURS),
    ),
    (
        "checkout.session.completed",
        lambda: events.checkout_session_completed("cs_test_1", **SESSION),
    ),
    (
        "checkout.session.async_payment_succeeded",
        lambda: events.checkout_session_async_payment_succeeded("cs_test_1", **SESSION),
    ),
    (
        "checkout.session.async_payment_failed",
        lambda: events.checkout_session_async_payment_failed("cs_test_1", **SESSION),
    ),
    (
        "charge.refunded",
        lambda: events.charge_refunded(
            "ch_1", payment_intent_id="pi_1", amount=2500, amount_refunded=700, **OURS
        ),
    ),
]


@pytest.mark.parametrize(("type_", "build"), BUILDERS, ids=[t for t, _ in BUILDERS])
def test_signed_event_verifies(type_: str, build: Callable[[], dict[str, Any]]) -> None:
    body = events.body(build())

    event = stripe.Webhook.construct_event(body, events.sign(body, SECRET), SECRET)

    # stripe 16's objects are not dicts; to_dict() is the way to one.
    obj = event.data.object.to_dict()
    assert event.type == type_
    assert obj["metadata"] == META
    assert obj["id"] in ("pi_1", "cs_test_1", "ch_1")


def test_event_objects_say_what_happened() -> None:
    failed = events.payment_intent_payment_failed(
        amount=100, message="Your card has insufficient funds.", decline_code="insufficient_funds"
    )["data"]["object"]
    assert failed["last_payment_error"]["message"] == "Your card has insufficient funds."
    assert failed["last_payment_error"]["decline_code"] == "insufficient_funds"
    assert failed["metadata"] == {}
    unpaid = events.checkout_session_completed(amount=100, payment_intent_id=None, paid=False)
    assert unpaid["data"]["object"]["payment_status"] == "unpaid"
    failed_later = events.checkout_session_async_payment_failed(amount=100, payment_intent_id=None)
    assert failed_later["data"]["object"]["payment_status"] == "unpaid"
    refunded = events.charge_refunded(
        payment_intent_id="pi_1", amount=100, amount_refunded=100, previously_refunded=40
    )
    assert refunded["data"]["object"]["refunded"] is True
    assert refunded["data"]["previous_attributes"] == {"amount_refunded": 40, "refunded": False}


def test_tampered_or_stale_events_do_not_verify() -> None:
    body = events.body(events.payment_intent_succeeded("pi_1", amount=2500, top_up_id=TOP_UP))
    header = events.sign(body, SECRET)
    tampered = json.loads(body)
    tampered["data"]["object"]["amount"] = 250000

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(json.dumps(tampered).encode(), header, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, events.sign(body, "whsec_other"), SECRET)
    stale = events.sign(body, SECRET, timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(body, stale, SECRET, tolerance=300)
