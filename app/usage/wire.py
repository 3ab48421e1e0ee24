"""The JSON shape of a usage event, shared by the REST and GraphQL paths."""

from __future__ import annotations

from datetime import datetime

from app.fields import FieldError, count, text, utc
from app.ids import from_global_id
from app.money import MoneyError, parse_usd
from app.pricing.book import Metered, PricingError
from app.usage.ingest import UsageEvent
from app.usage.tables import UsageStatus

MAX_TAGS = 20
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 200


def parse_event(raw: object) -> UsageEvent:
    if not isinstance(raw, dict):
        raise FieldError("each event must be a JSON object")
    request_id = text(raw, "request_id")
    api_key_id = from_global_id(raw.get("api_key_id"), "ApiKey")
    if api_key_id is None:
        raise FieldError("api_key_id: must be an API key id as returned by authorize")
    status = raw.get("status", "succeeded")
    if status not in (UsageStatus.SUCCEEDED, UsageStatus.FAILED):
        raise FieldError('status: must be "succeeded" or "failed"')
    action = raw.get("action")
    if action is not None and not isinstance(action, str):
        raise FieldError("action: must be a string")
    try:
        provider_cost = raw.get("provider_cost_usd")
        metered = Metered(
            prompt_tokens=count(raw, "prompt_tokens"),
            completion_tokens=count(raw, "completion_tokens"),
            units=_units(raw.get("units", "0")),
            provider_cost=None if provider_cost is None else parse_usd(provider_cost),
        )
    except (PricingError, MoneyError) as error:
        raise FieldError(str(error)) from None
    return UsageEvent(
        request_id=request_id,
        api_key_id=api_key_id,
        model=text(raw, "model"),
        action=action,
        metered=metered,
        status=UsageStatus(status),
        occurred_at=_time(raw.get("occurred_at")),
        tags=_tags(raw.get("tags")),
    )


def _units(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FieldError('units: must be a decimal string such as "1.5"')
    return str(value)


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError("occurred_at: must be an ISO 8601 time with a time zone")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError("occurred_at: must be an ISO 8601 time with a time zone") from None
    if at.tzinfo is None:
        raise FieldError("occurred_at: must carry a time zone (such as Z)")
    if utc(at) is None:
        raise FieldError("occurred_at: must be in years 1 to 9999 in UTC")
    return at


def _tags(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_TAGS:
        raise FieldError(f"tags: must be an object of at most {MAX_TAGS} strings")
    for key, tag in value.items():
        if not isinstance(tag, str) or len(key) > MAX_TAG_KEY or len(tag) > MAX_TAG_VALUE:
            raise FieldError(
                f"tags: keys up to {MAX_TAG_KEY} and values up to {MAX_TAG_VALUE} characters, "
                "strings"
            )
    return dict(value)
