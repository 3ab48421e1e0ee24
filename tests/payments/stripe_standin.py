"""A local stand-in for the Stripe API, served over HTTP so that tests drive the real
``stripe`` library: what it sends, its retries, and how it reads answers and errors.

Only what ``StripeProvider`` uses is there, behaving as Stripe documents it: form-encoded
requests with ``a[b][0]=v`` keys, JSON objects back, idempotency keys honoured, declines as
402 card errors, a payment made with ``setup_future_usage`` saving its card to the
customer (listed, detached). Test helpers play the payer's part (completing or failing a
payment) and Stripe Billing's (a subscription's renewal invoice), and ``fail_next`` plays
an outage.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import socket
import string
import time
from calendar import monthrange
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.payments import stripe_events

Obj = dict[str, Any]

SECRET_KEY = "sk_test_standin"
# Only to notice a hang; never a bound on how fast the server starts.
STARTUP_WAIT = 10
CHECKOUT_PAGE = "https://checkout.stripe.test/c/pay/"
CARD = "pm_card_visa"


@dataclass(frozen=True, slots=True)
class Decline:
    """How confirming with a payment method fails, as Stripe's card error says it."""

    message: str
    decline_code: str | None = "generic_decline"
    code: str = "card_declined"


# What confirming a PaymentIntent with a payment method leads to; any other succeeds.
Outcome = Decline | Literal["processing", "requires_action"]

# Stripe's test payment methods, as the cards they stand for: (brand, last four). Stripe
# makes a new PaymentMethod of a test one each time it is used; here it keeps its id,
# saved to the customer that paid with it last, so tests can name the card they charge.
CARD_DETAILS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("visa", "4242"),
    "pm_card_visa_debit": ("visa", "5556"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "pm_card_amex": ("amex", "0005"),
    "pm_card_discover": ("discover", "1117"),
    "pm_card_chargeDeclined": ("visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_authenticationRequired": ("visa", "3184"),
}
# When every card saved here expires.
CARD_EXPIRY = (12, 2034)

# Stripe's test payment methods that do not simply succeed.
TEST_CARDS: dict[str, Outcome] = {
    "pm_card_chargeDeclined": Decline("Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": Decline(
        "Your card has insufficient funds.", "insufficient_funds"
    ),
    "pm_card_authenticationRequired": Decline(
        "Your card was declined. This transaction requires authentication.",
        "authentication_required",
        code="authentication_required",
    ),
}


# The cards behind Stripe's test payment methods (brand, last four), as their charges'
# ``payment_method_details.card`` show them; other methods are a Visa ending 4242.
TEST_CARD_DETAILS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "pm_card_amex": ("amex", "8431"),
    "pm_card_chargeDeclined": ("visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_authenticationRequired": ("visa", "3184"),
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the stand-in received it; ``params`` are nested, values strings
    (``"true"``, ``"1000"``) as they travel in a form."""

    method: str
    path: str
    params: Obj
    idempotency_key: str | None
    status: int
    # Answered from the idempotency store: nothing was done.
    replayed: bool = False


class _Refusal(Exception):
    """An error answer in Stripe's shape: ``{"error": {"type": ..., "message": ...}}``."""

    def __init__(self, status: int, type_: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message} | fields}


def _invalid(message: str, *, param: str | None = None, code: str | None = None) -> _Refusal:
    fields = {k: v for k, v in (("param", param), ("code", code)) if v is not None}
    return _Refusal(400, "invalid_request_error", message, **fields)


def _random(length: int = 24) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def parse_params(pairs: Iterable[tuple[str, str]]) -> Obj:
    """Stripe's form encoding back into nesting: ``a[b][0][c]=v`` → ``{"a": {"b": [{"c": v}]}}``."""
    root: Obj = {}
    for key, value in pairs:
        head, bracket, rest = key.partition("[")
        parts = [head, *re.findall(r"\[([^\]]*)\]", bracket + rest)]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    listed: Obj = _listify(root)
    return listed


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _listify(item) for key, item in value.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def _amount(params: Obj, name: str, param: str | None = None) -> int:
    """A positive integer parameter; ``param`` is its full name when ``params`` is nested."""
    param = param or name
    if name not in params:
        raise _invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")
    value = params[name]
    if not (isinstance(value, str) and value.isdigit() and int(value) > 0):
        raise _invalid("Invalid positive integer", param=param, code="parameter_invalid_integer")
    return int(value)


Handler = Callable[..., Obj]


def _card_details(payment_method: str | None) -> Obj | None:
    if payment_method is None:
        return None
    brand, last4 = TEST_CARD_DETAILS.get(payment_method, ("visa", "4242"))
    card = {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2030, "funding": "credit"}
    return {"type": "card", "card": card}


def period_end(start: int, interval: str, count: int) -> int:
    """When a billing period that began at ``start`` (Unix seconds) ends: Stripe moves
    monthly periods by calendar months, keeping the day (the month's last when shorter)."""
    at = datetime.fromtimestamp(start, UTC)
    if interval == "week":
        return int((at + timedelta(weeks=count)).timestamp())
    if interval == "day":
        return int((at + timedelta(days=count)).timestamp())
    months = count * 12 if interval == "year" else count
    year, month = divmod(at.month - 1 + months, 12)
    year, month = at.year + year, month + 1
    moved = at.replace(year=year, month=month, day=min(at.day, monthrange(year, month)[1]))
    return int(moved.timestamp())


class StripeStandin:
    """The stand-in's state and its Starlette app; ``serve()`` puts it on a local port.

    ``objects`` holds every object by id, as Stripe would return it; ``requests`` every
    request received, in order.
    """

    def __init__(self, secret_key: str = SECRET_KEY) -> None:
        self.secret_key = secret_key
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.objects: dict[str, Obj] = {}
        self.outcomes: dict[str, Outcome] = dict(TEST_CARDS)
        self._failures: list[int] = []
        # Idempotency key → (method, path, params) it was first used with, status, body.
        self._saved: dict[str, tuple[tuple[str, str, Obj], int, bytes]] = {}
        # A Checkout Session's payment_intent_data, for the PaymentIntent its payer makes.
        self._intent_data: dict[str, Obj] = {}
        # A subscription-mode Checkout Session's subscription_data and recurring price.
        self._subscription_data: dict[str, tuple[Obj, Obj]] = {}
        # Saved cards' ids, in the order they were saved (to a customer) last.
        self._saved_cards: list[str] = []
        self._routes: list[tuple[str, str, Handler]] = [
            ("POST", r"/v1/customers", self._create_customer),
            ("POST", r"/v1/payment_intents", self._create_payment_intent),
            ("GET", r"/v1/payment_intents/(?P<intent>[^/]+)", self._get("payment_intent")),
            ("POST", r"/v1/checkout/sessions", self._create_checkout_session),
            ("GET", r"/v1/checkout/sessions/(?P<session>[^/]+)", self._get("checkout.session")),
            ("POST", r"/v1/refunds", self._create_refund),
            ("GET", r"/v1/charges/(?P<charge>[^/]+)", self._get("charge")),
            ("GET", r"/v1/invoices/(?P<invoice>[^/]+)", self._get("invoice")),
            ("GET", r"/v1/subscriptions/(?P<subscription>[^/]+)", self._get("subscription")),
            ("POST", r"/v1/subscriptions/(?P<subscription>[^/]+)", self._update_subscription),
            ("DELETE", r"/v1/subscriptions/(?P<subscription>[^/]+)", self._cancel_subscription),
            ("GET", r"/v1/payment_methods", self._list_payment_methods),
            ("GET", r"/v1/payment_methods/(?P<payment_method>[^/]+)", self._get("payment_method")),
            (
                "POST",
                r"/v1/payment_methods/(?P<payment_method>[^/]+)/detach",
                self._detach_payment_method,
            ),
        ]
        methods = ["GET", "POST", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    # -- serving --------------------------------------------------------------------------

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Self]:
        """Run on 127.0.0.1 in this process's event loop, with ``url`` set, until exit."""
        server = uvicorn.Server(uvicorn.Config(self.app, lifespan="off", log_level="warning"))
        # Bound here and handed to uvicorn, so no other process can take the port between.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(STARTUP_WAIT):
                while not server.started:
                    if task.done():
                        task.result()  # raises the startup failure
                    await asyncio.sleep(0.01)
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            yield self
        finally:
            server.should_exit = True
            await task
            sock.close()

    # -- test controls --------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests with an ``api_error`` before doing anything,
        as when Stripe has an outage (nothing is created or saved for their keys)."""
        self._failures.extend([status] * count)

    def objects_of(self, kind: str) -> list[Obj]:
        """Every object whose ``"object"`` is ``kind`` (e.g. ``"payment_intent"``)."""
        return [obj for obj in self.objects.values() if obj["object"] == kind]

    def succeed_payment_intent(self, intent_id: str, payment_method: str = CARD) -> Obj:
        """The payer confirmed ``intent_id`` with ``payment_method`` and it was charged."""
        intent = self._open_intent(intent_id)
        self._settle(intent, payment_method)
        return copy.deepcopy(intent)

    def fail_payment_intent(
        self,
        intent_id: str,
        *,
        message: str = "Your card was declined.",
        decline_code: str | None = "generic_decline",
    ) -> Obj:
        """The payer's card was declined: the intent waits for another payment method."""
        intent = self._open_intent(intent_id)
        self._decline(intent, Decline(message, decline_code), None)
        return copy.deepcopy(intent)

    def cancel_payment_intent(self, intent_id: str) -> Obj:
        intent = self._open_intent(intent_id)
        intent.update(status="canceled", canceled_at=int(time.time()), client_secret=None)
        intent["cancellation_reason"] = "abandoned"
        return copy.deepcopy(intent)

    def pay_checkout_session(
        self, session_id: str, payment_method: str = CARD, *, paid: bool = True
    ) -> Obj:
        """The payer submitted the hosted page: its PaymentIntent is made and charged
        (``paid``), or left processing, as a bank debit would be."""
        session = self._session(session_id)
        data = self._intent_data.get(session_id, {})
        intent = self._new_intent(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            metadata=data.get("metadata", {}),
            setup_future_usage=data.get("setup_future_usage"),
        )
        if paid:
            self._settle(intent, payment_method)
        else:
            intent.update(status="processing", payment_method=payment_method)
        session.update(
            status="complete",
            payment_status="paid" if paid else "unpaid",
            payment_intent=intent["id"],
            url=None,
        )
        return copy.deepcopy(session)

    def pay_subscription_session(
        self, session_id: str, *, at: int | None = None, payment_method: str = CARD
    ) -> tuple[Obj, Obj, Obj]:
        """The payer subscribed on the hosted page at ``at`` (Unix seconds; now by default):
        the subscription exists, its first invoice is paid for the first period. Returns
        the session, the subscription and the invoice."""
        session = self._session(session_id)
        data, price = self._subscription_data[session_id]
        start = int(time.time()) if at is None else at
        recurring = price["recurring"]
        interval, count = recurring["interval"], int(recurring.get("interval_count", "1"))
        subscription = self._add(
            stripe_events.subscription(
                f"sub_{_random()}",
                customer=session["customer"],
                amount=session["amount_total"],
                currency=session["currency"],
                interval=interval,
                interval_count=count,
                period_start=start,
                period_end=period_end(start, interval, count),
            )
        )
        subscription["metadata"] = data.get("metadata", {})
        subscription["default_payment_method"] = payment_method
        invoice = self._invoice(subscription, "subscription_create")
        session.update(
            status="complete",
            payment_status="paid",
            subscription=subscription["id"],
            invoice=invoice["id"],
            url=None,
        )
        return copy.deepcopy(session), copy.deepcopy(subscription), copy.deepcopy(invoice)

    def renew_subscription(self, subscription_id: str) -> Obj:
        """Stripe Billing renewed the subscription at its period's end and the card paid:
        the next period's invoice (``subscription_cycle``)."""
        subscription = self.objects[subscription_id]
        if subscription["status"] != "active" or subscription["cancel_at_period_end"]:
            raise ValueError(f"{subscription_id} does not renew")
        item = subscription["items"]["data"][0]
        recurring = item["price"]["recurring"]
        start = item["current_period_end"]
        item["current_period_start"] = start
        item["current_period_end"] = period_end(
            start, recurring["interval"], recurring["interval_count"]
        )
        return copy.deepcopy(self._invoice(subscription, "subscription_cycle"))

    def end_subscription(self, subscription_id: str) -> Obj:
        """Stripe ended the subscription (its period ended with ``cancel_at_period_end``,
        or it was canceled in the dashboard)."""
        subscription = self.objects[subscription_id]
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        return copy.deepcopy(subscription)

    def _invoice(self, subscription: Obj, billing_reason: str) -> Obj:
        item = subscription["items"]["data"][0]
        metadata = subscription["metadata"]
        invoice = self._add(
            stripe_events.invoice(
                f"in_{_random()}",
                subscription_id=subscription["id"],
                amount_paid=item["price"]["unit_amount"],
                currency=subscription["currency"],
                period_start=item["current_period_start"],
                period_end=item["current_period_end"],
                billing_reason=billing_reason,
                customer=subscription["customer"],
            )
        )
        # The invoice's snapshot of the subscription's metadata, as Stripe keeps it.
        invoice["parent"]["subscription_details"]["metadata"] = copy.deepcopy(metadata)
        subscription["latest_invoice"] = invoice["id"]
        return invoice

    def expire_checkout_session(self, session_id: str) -> Obj:
        session = self._session(session_id)
        session.update(status="expired", url=None)
        return copy.deepcopy(session)

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        body = (await request.body()).decode()
        params = parse_params(parse_qsl(body or request.url.query, keep_blank_values=True))
        key = request.headers.get("idempotency-key")
        replayed = False
        if self._failures:
            status = self._failures.pop(0)
            answer = {"error": {"type": "api_error", "message": "Something went wrong."}}
            content = json.dumps(answer).encode()
        elif request.headers.get("authorization") != f"Bearer {self.secret_key}":
            status, content = 401, self._error_body(_invalid("Invalid API Key provided."))
        elif method == "POST" and key is not None and key in self._saved:
            first, status, content = self._saved[key]
            if first != (method, path, params):
                status, content = 400, self._idempotency_error(key)
            else:
                replayed = True
        else:
            status, content = self._run(method, path, params)
            # Stripe saves the result of a request its endpoint began executing.
            if method == "POST" and key is not None and status in (200, 402):
                self._saved[key] = ((method, path, params), status, content)
        self.requests.append(RecordedRequest(method, path, params, key, status, replayed))
        headers = {"Request-Id": f"req_{_random(14)}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(content, status, headers, media_type="application/json")

    def _run(self, method: str, path: str, params: Obj) -> tuple[int, bytes]:
        for route_method, pattern, handler in self._routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                try:
                    found = handler(params, **match.groupdict())
                except _Refusal as refusal:
                    return refusal.status, self._error_body(refusal)
                return 200, json.dumps(self._expand(found, params.get("expand", []))).encode()
        unknown = _invalid(f"Unrecognized request URL ({method}: {path}).")
        return 404, self._error_body(unknown)

    @staticmethod
    def _error_body(refusal: _Refusal) -> bytes:
        return json.dumps(refusal.body).encode()

    @staticmethod
    def _idempotency_error(key: str) -> bytes:
        message = (
            "Keys for idempotent requests can only be used with the same parameters they "
            f"were first used with. Try using a key other than '{key}' if you meant to "
            "execute a different request."
        )
        return json.dumps({"error": {"type": "idempotency_error", "message": message}}).encode()

    def _expand(self, obj: Obj, fields: list[str]) -> Obj:
        """``obj`` with ``fields`` expanded, dotted paths (``payment_intent.latest_charge``)
        through the objects expanded before them."""
        expanded = copy.deepcopy(obj)
        for field in fields:
            *path, last = field.split(".")
            node: Any = expanded
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and isinstance(node.get(last), str):
                found = self.objects.get(node[last])
                if found is not None:
                    node[last] = copy.deepcopy(found)
        return expanded

    # -- endpoints ------------------------------------------------------------------------

    def _add(self, obj: Obj) -> Obj:
        self.objects[obj["id"]] = obj
        return obj

    def _get(self, kind: str) -> Handler:
        def get(params: Obj, **ids: str) -> Obj:
            [(param, object_id)] = ids.items()
            obj = self.objects.get(object_id)
            if obj is None or obj["object"] != kind:
                message = f"No such {kind.removeprefix('checkout.')}: '{object_id}'"
                raise _invalid(message, param=param, code="resource_missing")
            return obj

        return get

    def _customer_param(self, params: Obj) -> str | None:
        customer: str | None = params.get("customer")
        if customer is not None and customer not in self.objects:
            raise _invalid(
                f"No such customer: '{customer}'", param="customer", code="resource_missing"
            )
        return customer

    def _create_customer(self, params: Obj) -> Obj:
        return self._add(
            {
                "id": f"cus_{_random(14)}",
                "object": "customer",
                "created": int(time.time()),
                "email": params.get("email"),
                "livemode": False,
                "metadata": params.get("metadata", {}),
                "name": params.get("name"),
            }
        )

    def _new_intent(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None,
        metadata: Obj,
        setup_future_usage: str | None,
        automatic_payment_methods: Obj | None = None,
    ) -> Obj:
        intent_id = f"pi_{_random()}"
        return self._add(
            {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_received": 0,
                "automatic_payment_methods": automatic_payment_methods,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic",
                "client_secret": f"{intent_id}_secret_{_random(25)}",
                "confirmation_method": "automatic",
                "created": int(time.time()),
                "currency": currency,
                "customer": customer,
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": metadata,
                "next_action": None,
                "payment_method": None,
                "setup_future_usage": setup_future_usage,
                "status": "requires_payment_method",
            }
        )

    def _create_payment_intent(self, params: Obj) -> Obj:
        amount = _amount(params, "amount")
        if "currency" not in params:
            raise _invalid("Missing required param: currency.", param="currency")
        confirm = params.get("confirm") == "true"
        payment_method: str | None = params.get("payment_method")
        if params.get("off_session") == "true" and not confirm:
            raise _invalid("off_session can only be used when confirm=true.", param="off_session")
        if confirm and payment_method is None:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        automatic = params.get("automatic_payment_methods")
        intent = self._new_intent(
            amount=amount,
            currency=params["currency"],
            customer=self._customer_param(params),
            metadata=params.get("metadata", {}),
            setup_future_usage=params.get("setup_future_usage"),
            automatic_payment_methods=(
                {"enabled": automatic.get("enabled") == "true"} if automatic else None
            ),
        )
        if payment_method is None:
            return intent
        saved = self.objects.get(payment_method)
        if saved is not None and saved["object"] == "payment_method" and saved["customer"] is None:
            raise _invalid(
                "The provided PaymentMethod was previously used without being attached to a "
                "Customer or was detached from a Customer, and may not be used again.",
                param="payment_method",
            )
        if not confirm:
            intent.update(status="requires_confirmation", payment_method=payment_method)
            return intent
        match self.outcomes.get(payment_method):
            case Decline() as decline:
                charge = self._decline(intent, decline, payment_method)
                raise _Refusal(
                    402,
                    "card_error",
                    decline.message,
                    code=decline.code,
                    decline_code=decline.decline_code,
                    charge=charge["id"],
                    payment_intent=copy.deepcopy(intent),
                )
            case "processing" | "requires_action" as status:
                intent.update(status=status, payment_method=payment_method)
                if status == "requires_action":
                    intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
            case None:
                self._settle(intent, payment_method)
        return intent

    def _charge(self, intent: Obj, payment_method: str | None, *, paid: bool) -> Obj:
        amount = intent["amount"]
        charge = self._add(
            {
                "id": f"ch_{_random()}",
                "object": "charge",
                "amount": amount,
                "amount_captured": amount if paid else 0,
                "amount_refunded": 0,
                "captured": paid,
                "created": int(time.time()),
                "currency": intent["currency"],
                "customer": intent["customer"],
                "livemode": False,
                # PaymentIntents copy their metadata onto their charges.
                "metadata": copy.deepcopy(intent["metadata"]),
                "paid": paid,
                "payment_intent": intent["id"],
                "payment_method": payment_method,
                "payment_method_details": _card_details(payment_method),
                "refunded": False,
                "status": "succeeded" if paid else "failed",
            }
        )
        intent["latest_charge"] = charge["id"]
        return charge

    def _settle(self, intent: Obj, payment_method: str) -> None:
        self._charge(intent, payment_method, paid=True)
        if intent["customer"] is not None and intent["setup_future_usage"] is not None:
            self._save_card(payment_method, intent["customer"])
        intent.update(
            status="succeeded",
            payment_method=payment_method,
            amount_received=intent["amount"],
            last_payment_error=None,
            next_action=None,
        )

    def _save_card(self, payment_method: str, customer: str) -> None:
        """Attach the card a payment was made with to its customer, for later charges."""
        brand, last4 = CARD_DETAILS.get(payment_method, CARD_DETAILS[CARD])
        exp_month, exp_year = CARD_EXPIRY
        self._add(
            {
                "id": payment_method,
                "object": "payment_method",
                "billing_details": {"address": None, "email": None, "name": None, "phone": None},
                "card": {
                    "brand": brand,
                    "country": "US",
                    "display_brand": brand,
                    "exp_month": exp_month,
                    "exp_year": exp_year,
                    "funding": "credit",
                    "last4": last4,
                },
                "created": int(time.time()),
                "customer": customer,
                "livemode": False,
                "metadata": {},
                "type": "card",
            }
        )
        if payment_method in self._saved_cards:
            self._saved_cards.remove(payment_method)
        self._saved_cards.append(payment_method)

    def _list_payment_methods(self, params: Obj) -> Obj:
        """A customer's payment methods of one type, newest first, a page at a time."""
        customer = self._customer_param(params)
        limit = int(params.get("limit", "10"))
        if not 1 <= limit <= 100:
            raise _invalid("Invalid limit: must be between 1 and 100.", param="limit")
        found = [
            self.objects[pm]
            for pm in reversed(self._saved_cards)
            if self.objects[pm]["customer"] == customer
            and params.get("type") in (None, self.objects[pm]["type"])
        ]
        after = params.get("starting_after")
        if after is not None:
            ids = [pm["id"] for pm in found]
            if after not in ids:
                raise _invalid(f"No such PaymentMethod: '{after}'", param="starting_after")
            found = found[ids.index(after) + 1 :]
        return {
            "object": "list",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "url": "/v1/payment_methods",
        }

    def _detach_payment_method(self, params: Obj, payment_method: str) -> Obj:
        found = self._get("payment_method")(params, payment_method=payment_method)
        if found["customer"] is None:
            raise _invalid(
                "The payment method you provided is not attached to a customer so detachment "
                "is impossible.",
                code="payment_method_unexpected_state",
            )
        found["customer"] = None
        return found

    def _decline(self, intent: Obj, decline: Decline, payment_method: str | None) -> Obj:
        charge = self._charge(intent, payment_method, paid=False)
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            last_payment_error={
                "type": "card_error",
                "charge": charge["id"],
                "code": decline.code,
                "decline_code": decline.decline_code,
                "message": decline.message,
            },
        )
        return charge

    def _open_intent(self, intent_id: str) -> Obj:
        intent = self.objects[intent_id]
        if intent["status"] in ("succeeded", "canceled"):
            raise ValueError(f"{intent_id} is already {intent['status']}")
        return intent

    def _session(self, session_id: str) -> Obj:
        session = self.objects[session_id]
        if session["status"] != "open":
            raise ValueError(f"{session_id} is already {session['status']}")
        return session

    def _create_checkout_session(self, params: Obj) -> Obj:
        mode = params.get("mode")
        if mode not in ("payment", "subscription"):
            raise _invalid("The stand-in knows mode=payment and mode=subscription.", param="mode")
        items = params.get("line_items")
        if not items:
            raise _invalid("Missing required param: line_items.", param="line_items")
        if mode == "subscription" and "payment_intent_data" in params:
            raise _invalid(
                "You can not pass `payment_intent_data` in `subscription` mode.",
                param="payment_intent_data",
            )
        amount_total = 0
        currencies = set()
        for index, item in enumerate(items):
            price = item.get("price_data", {})
            currency = price.get("currency", "")
            if not re.fullmatch("[a-z]{3}", currency) or "name" not in price.get(
                "product_data", {}
            ):
                raise _invalid("Line items need price_data with a currency and a product name.")
            if mode == "payment" and currency != "usd":
                raise _invalid("The stand-in takes payments in usd.")
            recurring = price.get("recurring")
            if (mode == "subscription") != isinstance(recurring, dict):
                raise _invalid(
                    "Subscription mode needs recurring prices, and payment mode one-time ones."
                )
            if isinstance(recurring, dict) and (
                recurring.get("interval") not in ("day", "week", "month", "year")
                or not recurring.get("interval_count", "1").isdigit()
            ):
                raise _invalid("Invalid recurring price.", param=f"line_items[{index}]")
            currencies.add(currency)
            name = f"line_items[{index}]"
            unit_amount = _amount(price, "unit_amount", f"{name}[price_data][unit_amount]")
            amount_total += unit_amount * _amount(item, "quantity", f"{name}[quantity]")
        if len(currencies) != 1:
            raise _invalid("All line items must share one currency.")
        session_id = f"cs_test_{_random(58)}"
        if mode == "subscription":
            if len(items) != 1:
                raise _invalid("The stand-in subscribes to one line item.")
            price = items[0]["price_data"]
            self._subscription_data[session_id] = (params.get("subscription_data", {}), price)
        else:
            self._intent_data[session_id] = params.get("payment_intent_data", {})
        return self._add(
            {
                "id": session_id,
                "object": "checkout.session",
                "amount_subtotal": amount_total,
                "amount_total": amount_total,
                "cancel_url": params.get("cancel_url"),
                "client_reference_id": params.get("client_reference_id"),
                "created": int(time.time()),
                "currency": currencies.pop(),
                "customer": self._customer_param(params),
                "expires_at": int(time.time()) + 24 * 3600,
                "invoice": None,
                "livemode": False,
                "metadata": params.get("metadata", {}),
                "mode": mode,
                "payment_intent": None,
                "payment_status": "unpaid",
                "status": "open",
                "subscription": None,
                "success_url": params.get("success_url"),
                "url": CHECKOUT_PAGE + session_id,
            }
        )

    def _subscription(self, subscription_id: str) -> Obj:
        subscription = self._get("subscription")({}, subscription=subscription_id)
        if subscription["status"] == "canceled":
            raise _invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
                code="resource_missing",
            )
        return subscription

    def _update_subscription(self, params: Obj, subscription: str) -> Obj:
        found = self._subscription(subscription)
        if "cancel_at_period_end" in params:
            cancel = params["cancel_at_period_end"] == "true"
            end = found["items"]["data"][0]["current_period_end"]
            found.update(cancel_at_period_end=cancel, cancel_at=end if cancel else None)
        if "metadata" in params:
            found["metadata"] = found["metadata"] | params["metadata"]
        return found

    def _cancel_subscription(self, params: Obj, subscription: str) -> Obj:
        self.end_subscription(self._subscription(subscription)["id"])
        return self.objects[subscription]

    def _create_refund(self, params: Obj) -> Obj:
        intent_id = params.get("payment_intent")
        intent = self.objects.get(intent_id) if isinstance(intent_id, str) else None
        if intent is None:
            raise _invalid(
                f"No such payment_intent: '{intent_id}'",
                param="payment_intent",
                code="resource_missing",
            )
        charge = self.objects.get(intent["latest_charge"] or "")
        if charge is None or charge["status"] != "succeeded":
            raise _invalid(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund."
            )
        left = charge["amount"] - charge["amount_refunded"]
        amount = _amount(params, "amount") if "amount" in params else left
        if amount > left:
            raise _invalid(
                f"Refund amount (${amount / 100:.2f}) is greater than unrefunded amount on "
                f"charge (${left / 100:.2f})",
                param="amount",
                code="amount_too_large",
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return self._add(
            {
                "id": f"re_{_random()}",
                "object": "refund",
                "amount": amount,
                "charge": charge["id"],
                "created": int(time.time()),
                "currency": charge["currency"],
                "metadata": params.get("metadata", {}),
                "payment_intent": intent_id,
                "reason": params.get("reason"),
                "status": "succeeded",
            }
        )
