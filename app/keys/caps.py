"""Whether a key may spend an amount now, and the envelope headers that tell it how much.

Everything a hold must fit under is checked here, in one place: the wallet, the key's
lifetime quota, each rolling window and the org's monthly spend cap. Active holds
count against all of them. An amount of 0 (an authorization without an estimate)
only asks that something is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.keys.windows import Window, resets_at, spent_in_window
from app.ledger.state import KeyState, WalletState, next_month
from app.money import format_usd, format_usd_short


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: str
    message: str
    reset: int | None = None  # Unix second when retrying can succeed, when known
    # Credits more to purchase within 28 days that would lift it (a plan's unlock tiers):
    # what autoScale buys (``app.gateway.auto_scale``).
    unlock: int | None = None


def _fits(amount: int, left: int) -> bool:
    return amount <= left if amount > 0 else left > 0


def check_spend(
    wallet: WalletState,
    key: KeyState,
    amount: int,
    now: datetime,
    *,
    critical: bool,
    overage: bool = False,
) -> Refusal | None:
    """The first cap that ``amount`` would break, or None when it fits under all of them.
    With ``overage`` (the org's plan bills usage past its wallet when the period closes),
    the wallet is no cap; the others still are."""
    if not overage and not _fits(amount, wallet.available):
        return Refusal(
            402,
            "insufficient_balance",
            f"the wallet has {format_usd(max(wallet.available, 0))} USD available; "
            "top up to continue",
        )
    if key.quota is not None and not _fits(amount, key.quota - key.spent - key.held):
        return Refusal(429, "quota_exhausted", "the API key's quota is spent")
    for window, limit in key.limits.items():
        marks = key.marks[window]
        if not _fits(amount, limit - spent_in_window(key.spent, marks) - key.held):
            return Refusal(
                429,
                "rate_limited",
                f"the API key's {window} spend limit is reached",
                resets_at(marks, window),
            )
    if wallet.spend_cap is not None and not critical:
        left = wallet.spend_cap - wallet.month_spent - wallet.held
        if not _fits(amount, left):
            return Refusal(
                429,
                "spend_cap_reached",
                "the organization's monthly spend cap is reached",
                int(next_month(now).timestamp()),
            )
    return None


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every key-authenticated response tells the caller about its budget."""

    limit: int
    remaining: int
    reset: int
    quota_remaining: int
    org_remaining: int | None

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": format_usd_short(self.limit),
            "X-RateLimit-Remaining": format_usd_short(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "X-Quota-Remaining-Credits": format_usd_short(self.quota_remaining),
        }
        if self.org_remaining is not None:
            headers["X-Org-Quota-Remaining-Credits"] = format_usd_short(self.org_remaining)
        return headers


def envelope(wallet: WalletState, key: KeyState, now: datetime) -> Envelope:
    """The bucket closest to constraining: the tightest window, or the monthly spend cap
    when it is tighter; without either, the quota or the wallet.

    Amounts are USD; reset is the Unix second when waiting frees more of that bucket: a
    window's oldest spend leaving it, the spend cap's next month. The wallet and the quota
    never refill with time, so theirs is now: waiting does not help, a top-up does.
    """
    now_second = int(now.timestamp())
    quota_left = key.quota - key.spent - key.held if key.quota is not None else None
    spendable = min(wallet.available, quota_left) if quota_left is not None else wallet.available
    limit, remaining, reset = key.quota or wallet.balance, spendable, now_second
    tightest: Window | None = None
    for window, window_limit in key.limits.items():
        marks = key.marks[window]
        left = window_limit - spent_in_window(key.spent, marks) - key.held
        if tightest is None or left < remaining:
            tightest, limit, remaining = window, window_limit, left
            reset = resets_at(marks, window) or now_second
    if wallet.spend_cap is not None:
        left = wallet.spend_cap - wallet.month_spent - wallet.held
        if left < remaining:
            limit, remaining = wallet.spend_cap, left
            reset = int(next_month(now).timestamp())
    return Envelope(
        limit=max(limit, 0),
        remaining=max(min(remaining, spendable), 0),
        reset=reset,
        quota_remaining=quota_left if quota_left is not None else wallet.available,
        org_remaining=wallet.available if key.owner is None else None,
    )
