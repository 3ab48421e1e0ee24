"""``POST /webhooks/stripe``: Stripe's signed events about payments and refunds."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.rest.http import ApiError, JSONResponse, read_body
from app.api.rest.principal import runtime
from app.payments.stripe_events import InvalidEvent, receive, verified_event


async def stripe_webhook(request: Request) -> Response:
    """Verify, record and process one event; a bad signature is a 400 and changes nothing.

    Processing is a lookup and one ledger transaction, so Stripe gets its answer well
    within its timeout; an event seen before is answered without being processed again.
    """
    rt = runtime(request)
    secret = rt.settings.stripe_webhook_secret
    if secret is None or rt.payments.provider is None or rt.payments.provider.name != "stripe":
        raise ApiError(404, "Stripe webhooks are not configured on this server")
    payload = await read_body(request, rt.settings.max_body_bytes)
    try:
        event = verified_event(
            payload,
            request.headers.get("stripe-signature"),
            secret,
            rt.settings.stripe_webhook_tolerance_seconds,
        )
    except InvalidEvent as exc:
        raise ApiError(400, str(exc), code="invalid_webhook") from None
    outcome = await receive(rt.payments, event)
    return JSONResponse({"received": True, "outcome": outcome})
