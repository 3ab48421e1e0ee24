"""The gateway's endpoints: authorize before a call, report usage after."""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.api.rest.http import ApiError, JSONResponse, invalid, read_json
from app.api.rest.principal import require, runtime
from app.auth import AuthError, Role
from app.fields import FieldError, count, text
from app.gateway import auto_scale
from app.gateway.authorize import AuthorizeJob, HoldEstimate
from app.ids import to_global_id
from app.keys.access import envelope_of
from app.money import MoneyError, amount_json, parse_usd
from app.usage.ingest import UsageJob, UsageOutcome
from app.usage.wire import parse_event


async def authorize(request: Request) -> Response:
    rt = runtime(request)
    body = await read_json(request, rt.settings.max_body_bytes)
    try:
        secret = text(body, "api_key")
        model = text(body, "model")
        request_id = text(body, "request_id")
        estimate = _estimate(body)
        test = body.get("dry_run", False)
        if not isinstance(test, bool):
            raise FieldError("dry_run: must be true or false")
        scales = body.get("autoScale")  # Bytez's spelling; absent or null: the org's default
        if scales is not None and not isinstance(scales, bool):
            raise FieldError("autoScale: must be true or false")
    except (FieldError, MoneyError) as error:
        await _key_envelope(request, body.get("api_key"))
        raise invalid(str(error)) from None
    ref = await rt.keys.find(secret)
    if ref is None:
        raise ApiError(401, "the API key is not valid", code="invalid_api_key")
    job = AuthorizeJob(
        ref.organization_id,
        ref.id,
        ref.secret_hash,
        model,
        request_id,
        estimate,
        rt.prices,
        rt.hold_ttl,
        rt.plans,
        scales,
    )
    scaled = await auto_scale.authorize(rt, job, test=test)
    decision = scaled.decision
    headers = decision.envelope.headers() if decision.envelope else {}
    if decision.refusal is not None:
        refusal = decision.refusal
        retry_after = decision.retry_after(rt.clock.now())
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        raise ApiError(refusal.status, refusal.message, code=refusal.code, headers=headers)
    return JSONResponse(
        {
            "allowed": True,
            "dry_run": test,
            "api_key_id": to_global_id("ApiKey", ref.id),
            "organization_id": to_global_id("Organization", ref.organization_id),
            "request_id": request_id,
            "hold": amount_json(decision.hold),
            "auto_scale_purchase": amount_json(scaled.purchase) if scaled.purchase else None,
            "priority": decision.priority,
        },
        headers=headers,
    )


async def _key_envelope(request: Request, secret: object) -> None:
    """For a malformed authorization with a valid key, the envelope its 400 carries
    (``main._api_error``): a read, on this error path only."""
    rt = runtime(request)
    ref = await rt.keys.find(secret) if isinstance(secret, str) else None
    if ref is not None:
        with contextlib.suppress(AuthError):  # a key no longer valid: no envelope
            request.state.envelope = await envelope_of(
                rt, ref.organization_id, ref.id, ref.secret_hash
            )


def _estimate(body: dict[str, Any]) -> HoldEstimate:
    hold_usd = body.get("hold_usd")
    prompt, completion = count(body, "max_prompt_tokens"), count(body, "max_completion_tokens")
    if hold_usd is not None:
        if prompt or completion:
            raise FieldError("hold_usd: give either hold_usd or max tokens, not both")
        try:
            return HoldEstimate(credits=parse_usd(hold_usd))
        except MoneyError as error:
            raise FieldError(f"hold_usd: {error}") from None
    return HoldEstimate(None, prompt, completion)


async def record_usage(request: Request) -> Response:
    rt = runtime(request)
    principal = await require(request, Role.SERVICE)
    body = await read_json(request, rt.settings.max_body_bytes)
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise invalid("events: must be a non-empty list")
    if len(events) > rt.settings.usage_batch_max:
        raise ApiError(
            413,
            f"events: at most {rt.settings.usage_batch_max} per request",
            code="batch_too_large",
        )
    outcomes: list[UsageOutcome | None] = []
    jobs: list[UsageJob] = []
    for raw in events:
        try:
            jobs.append(UsageJob(principal.organization_id, parse_event(raw), rt.prices))
            outcomes.append(None)
        except FieldError as error:
            request_id = raw.get("request_id") if isinstance(raw, dict) else None
            outcomes.append(
                UsageOutcome.rejected(
                    request_id if isinstance(request_id, str) else "", "invalid_input", str(error)
                )
            )
    billed = iter(await rt.writer.submit(jobs))
    results = [outcome or next(billed) for outcome in outcomes]
    return JSONResponse({"results": [_outcome_json(outcome) for outcome in results]})


def _outcome_json(outcome: UsageOutcome) -> dict[str, Any]:
    error = None
    if outcome.error_code is not None:
        error = {"code": outcome.error_code, "message": outcome.error_message}
    return {
        "request_id": outcome.request_id,
        "outcome": outcome.outcome,
        "cost": amount_json(outcome.cost),
        "error": error,
    }
