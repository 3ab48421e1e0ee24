"""The domain's enums, registered once as GraphQL enums (GraphQL names their members).

Every module that uses one of them in a GraphQL type imports this module, so the
registration has happened whatever the import order.
"""

from __future__ import annotations

import strawberry

from app.auth import Role
from app.keys.tables import KeyStatus
from app.keys.windows import Window
from app.ledger.tables import EntryKind
from app.usage.tables import UsageStatus

strawberry.enum(
    Role,
    name="ViewerRole",
    description="What the caller may do: dashboard roles, the gateway's service role, an API key.",
)
strawberry.enum(EntryKind, name="LedgerEntryKind", description="Why a ledger entry moved money.")
strawberry.enum(
    KeyStatus,
    name="ApiKeyStatus",
    description="Whether the gateway accepts the key: ACTIVE; REVOKED (for good); EXPIRED "
    "(past its expiresAt).",
)
strawberry.enum(
    Window,
    name="SpendWindow",
    description="A rolling window, exact to the second: FIVE_HOURS, ONE_DAY (24 hours), "
    "SEVEN_DAYS. Nothing resets on the clock; spend leaves the window as it ages.",
)
strawberry.enum(
    UsageStatus, name="UsageStatus", description="How the call ended; failed calls are free."
)

__all__ = ["EntryKind", "KeyStatus", "Role", "UsageStatus", "Window"]
