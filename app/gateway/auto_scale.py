"""autoScale (Bytez): a call past its unlock tier's open-model limits buys its way in.

"By default, if you exceed your open model rate limits, requests are rejected with a
rate-limit error ... add autoScale: true ... the system auto-purchases extra credits
required to keep auto-scaling", within the "Max Monthly Spend". Here: when authorize
refuses an open-model call for its size (403 ``model_not_unlocked``) or its tier's
concurrency (429 ``concurrency_limit``) and every other check passes, the call buys the
purchase reaching the lowest unlock tier that runs it (``app.plans.limits``), charged to
the saved card as an automatic purchase (``Payments.auto_scale``: within auto-reload's
monthly maximum, whole cents, at least the smallest top-up). Its credits land in the
wallet and unlock the tier at once; the call is then authorized again as any call, at
its ordinary price. The call says ``autoScale``; when it does not, the organization's
default does. What autoScale cannot buy is refused with 402.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.gateway.authorize import AuthorizeJob, Decision, dry_run
from app.keys.caps import Refusal
from app.payments.service import AutoScaleError
from app.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Scaled:
    decision: Decision
    purchase: int = 0  # what autoScale bought to admit the call (a dry run: would buy)


async def authorize(rt: Runtime, job: AuthorizeJob, *, test: bool = False) -> Scaled:
    """Authorize ``job`` (``test``: as a dry run, buying nothing), buying past the plan's
    open-model limits when autoScale says so."""
    decision = await (dry_run(rt.db, job, rt.clock.now()) if test else rt.writer.run(job))
    if not decision.unlock:
        return Scaled(decision)
    payments = rt.payments
    if test:
        charge = payments.auto_scale_charge(decision.unlock)
        try:
            await payments.check_auto_scale(job.organization_id, charge)
        except AutoScaleError as error:
            return Scaled(Decision(_refusal(error), decision.envelope))
        return Scaled(replace(decision, refusal=None, unlock=0), charge)
    async with payments.scaling(job.organization_id):
        return await _scale(rt, job)


async def _scale(rt: Runtime, job: AuthorizeJob) -> Scaled:
    """Buy until the call is admitted or refused otherwise. Each purchase reaches a higher
    tier, so this ends: at the top tier, or at the Max Monthly Spend."""
    payments, bought = rt.payments, 0
    while True:
        decision = await rt.writer.run(job)  # the purchase before may have unlocked it
        if not decision.unlock:
            return Scaled(decision, bought)
        charge = payments.auto_scale_charge(decision.unlock)
        try:
            status = await payments.auto_scale(job.organization_id, charge)
        except AutoScaleError as error:
            return Scaled(Decision(_refusal(error), decision.envelope), bought)
        if status != "succeeded":  # nothing has landed yet: the plan's refusal stands
            return Scaled(decision, bought)
        bought += charge


def _refusal(error: AutoScaleError) -> Refusal:
    reset = None if error.retry_at is None else int(error.retry_at.timestamp())
    return Refusal(402, error.code, str(error), reset)
