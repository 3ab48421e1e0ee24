"""API keys as the dashboards see them: status, lifetime quota and rolling windows.

Amounts that count against a cap (``spent``) include the holds of calls still in
flight, as the gateway counts them, so ``remaining = limit - spent`` (never below 0)
is exactly what new calls may still use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import strawberry
from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Connection as DBConnection

from app.auth import Principal
from app.db import Prebuilt, in_list
from app.graphql.context import Info
from app.graphql.enums import KeyStatus, Window
from app.graphql.money import Amount, amount
from app.graphql.relay import Connection, Node, connection
from app.ids import to_global_id
from app.keys.windows import WindowMarks, resets_at, spent_in_window
from app.ledger.state import KeyState, key_state, keys_t, load_marks
from app.pages import Page


@strawberry.type(description="The key's lifetime quota: what it may spend over its whole life.")
class KeyQuota:
    limit: Amount | None = strawberry.field(description="Null: the key has no lifetime quota.")
    spent: Amount = strawberry.field(
        description="Billed over the key's life, plus holds of calls still in flight."
    )
    remaining: Amount | None = strawberry.field(
        description="limit - spent, never below 0 (a completed call always bills, even past "
        "the limit); null when there is no quota."
    )


@strawberry.type(description="One rolling-window spend limit of a key.")
class KeyWindow:
    window: Window = strawberry.field(description="Which window this row is about.")
    limit: Amount = strawberry.field(description="The most the key may spend in the window.")
    spent: Amount = strawberry.field(
        description="Billed within the window, plus holds of calls still in flight."
    )
    remaining: Amount = strawberry.field(description="limit - spent, never below 0.")
    resets_at: datetime | None = strawberry.field(
        description="UTC: when the oldest billed spend in the window leaves it and frees "
        "room; null when nothing billed is in the window."
    )


@strawberry.type(description="A secret that calls the gateway and spends the org's credits.")
class ApiKey(Node):
    name: str = strawberry.field(description="A label for people; not unique.")
    prefix: str = strawberry.field(
        description='The public part of the secret "sk-<prefix>-...": tells keys apart '
        "in lists; changes when the key is rotated. The secret itself is never listed."
    )
    group: str = strawberry.field(
        description="Routing group from the price book: which models the key may call."
    )
    status: KeyStatus = strawberry.field(description="Computed now: revoked wins over expired.")
    created_at: datetime = strawberry.field(description="UTC.")
    expires_at: datetime | None = strawberry.field(description="UTC; null: never expires.")
    last_used_at: datetime | None = strawberry.field(
        description="UTC, of the last billed call; null: never used."
    )
    owner: str | None = strawberry.field(
        description="The token subject of the person who owns the key (who created it in "
        "the dashboard); members manage only their own. Null: an organization key, "
        "managed by owners and admins."
    )
    quota: KeyQuota = strawberry.field(
        description="Lifetime quota and spend; present (with a null limit) when there is none."
    )
    windows: list[KeyWindow] = strawberry.field(
        description="One row per window the key has a limit for, shortest first; "
        "empty when it has none."
    )

    @classmethod
    def of(cls, row: Any, key: KeyState, marks: dict[Window, WindowMarks], now: datetime) -> ApiKey:
        """``row`` of the keys table, whose ``key_state`` is ``key``."""
        used = key.spent + key.held
        windows = []
        for window, limit in key.limits.items():
            spent = spent_in_window(key.spent, marks[window]) + key.held
            reset = resets_at(marks[window], window)
            windows.append(
                KeyWindow(
                    window=window,
                    limit=Amount.of(limit),
                    spent=Amount.of(spent),
                    remaining=Amount.of(max(limit - spent, 0)),
                    resets_at=None if reset is None else datetime.fromtimestamp(reset, UTC),
                )
            )
        return cls(
            id=strawberry.ID(to_global_id("ApiKey", row.id)),
            name=row.name,
            prefix=row.prefix,
            group=row.group,
            status=KeyStatus(key.status(now)),
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            owner=row.owner,
            quota=KeyQuota(
                limit=amount(key.quota),
                spent=Amount.of(used),
                remaining=None if key.quota is None else Amount.of(max(key.quota - used, 0)),
            ),
            windows=windows,
        )


def visible_keys(organization_id: Any, api_key_id: Any) -> Select[Any]:
    """The organization's keys the caller may see: an API key (``api_key_id``; None for
    people) sees only itself. Values or bound parameters (``_keys_by_id``)."""
    statement = select(keys_t).where(keys_t.c.organization_id == organization_id)
    if api_key_id is not None:
        statement = statement.where(keys_t.c.id == api_key_id)
    return statement


def api_keys(conn: DBConnection, rows: Sequence[Any], now: datetime) -> list[ApiKey]:
    """``rows`` of the keys table as ApiKeys: the window marks of all in one query."""
    keys = [key_state(row) for row in rows]
    windowed = [key.id for key in keys if key.limits]
    marks = load_marks(conn, windowed, int(now.timestamp())) if windowed else {}
    return [
        ApiKey.of(row, key, marks.get(key.id, {}), now) for row, key in zip(rows, keys, strict=True)
    ]


async def api_key_connection(info: Info, page: Page, total: int) -> Connection[ApiKey]:
    now = info.context.runtime.clock.now()
    keys = await info.context.runtime.db.read(lambda conn: api_keys(conn, page.rows, now))
    by_row = {row.id: key for row, key in zip(page.rows, keys, strict=True)}
    return connection(page, total, lambda row: by_row[row.id])


def _by_id(*, scoped: bool) -> Prebuilt[Select[Any]]:
    return Prebuilt(
        lambda dialect, _lock: visible_keys(
            bindparam("organization_id"), bindparam("api_key_id") if scoped else None
        ).where(in_list(keys_t.c.id, "ids", dialect))
    )


# Built once per shape (``Prebuilt``), by whether the caller is an API key: the usage
# log and summaries name their keys on every request.
_keys_by_id = {scoped: _by_id(scoped=scoped) for scoped in (False, True)}


def keys_by_id(
    conn: DBConnection, principal: Principal, key_ids: list[int], now: datetime
) -> list[ApiKey]:
    """Those of ``key_ids`` the caller may see, in one query (and one for their windows)."""
    params = {
        "organization_id": principal.organization_id,
        "api_key_id": principal.api_key_id,
        "ids": key_ids,
    }
    return api_keys(conn, _keys_by_id[principal.api_key_id is not None].rows(conn, params), now)


async def api_key_node(info: Info, key_id: int) -> ApiKey | None:
    """The key if the caller may see it (``node(id:)``, and mutations' answers)."""
    principal, now = info.context.caller(), info.context.runtime.clock.now()
    keys = await info.context.runtime.db.read(
        lambda conn: keys_by_id(conn, principal, [key_id], now)
    )
    return keys[0] if keys else None
