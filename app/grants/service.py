"""Giving credits: an admin's grant with its reason and optional expiry, and redeeming a
promo code. Amounts count in the organization's unit, as every amount of its wallet:
credits of a USD (micro-USD), or of a plan credit on a plan-credit rate card (8bit-ai).
"""

from __future__ import annotations

from datetime import datetime

from app.grants.jobs import UNKNOWN_CODE, Grant, Reason, RedeemPromo, Refusal
from app.grants.promos import CODE, normalize
from app.ledger.jobs import Posted, PostEntry
from app.ledger.tables import EntryKind
from app.runtime import Runtime

MAX_REASON = 500  # the ledger entry's memo


class GrantRefused(Exception):
    """Nothing was given, for ``refusal``'s reason."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _refuse(reason: Reason, message: str) -> GrantRefused:
    return GrantRefused(Refusal(reason, message))


async def grant(
    rt: Runtime,
    organization_id: int,
    amount: int,
    reason: str,
    *,
    actor: str,
    expires_at: datetime | None = None,
) -> Posted:
    """Give ``amount`` (positive credits) as a new lot expiring at ``expires_at``; the
    entry, its billing transaction and its audit record (wallet.grant) commit together."""
    assert amount > 0, "the API refuses other amounts"
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise _refuse(Reason.INVALID_REASON, f"give a reason of 1 to {MAX_REASON} characters")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise _refuse(Reason.INVALID_EXPIRY, "give a time zone (such as Z)")
        if expires_at <= rt.clock.now():
            raise _refuse(Reason.INVALID_EXPIRY, "must be in the future")
    entry = PostEntry(
        organization_id,
        EntryKind.GRANT,
        amount,
        f"grant:{actor}",
        memo=reason,
        expires_at=expires_at,
    )
    return _given(await rt.writer.run(Grant(entry, actor)))


async def redeem(rt: Runtime, organization_id: int, code: str, *, actor: str) -> Posted:
    """Redeem a promo code (any case) for the organization: a GRANT entry, the redemption
    counted and audited (promo.redeem), or GrantRefused saying which limit stopped it."""
    code = normalize(code)
    if not CODE.fullmatch(code):  # no such code can exist: not worth a transaction
        raise GrantRefused(UNKNOWN_CODE)
    return _given(await rt.writer.run(RedeemPromo(organization_id, code, actor, rt.prices.unit)))


def _given(result: Posted | Refusal) -> Posted:
    if isinstance(result, Refusal):
        raise GrantRefused(result)
    return result
