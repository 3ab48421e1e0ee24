"""API keys as the dashboards see them: status, lifetime quota and rolling windows.

Amounts that count against a cap (``spent``) include the holds of calls still in
flight, as the gateway counts them, so ``remaining = limit - spent`` (never below 0)
is exactly what new calls may still use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

import strawberry
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection as DBConnection

from app.auth import Principal
from app.db import Prebuilt, in_list
from app.graphql.context import Info
from app.graphql.enums import KeyStatus, Window
from app.graphql.money import Amount, amount
from app.graphql.relay import Connection, Node, page_connection
from app.ids import to_global_id
from app.keys.windows import WindowMarks, resets_at, spent_in_window
from app.ledger.state import KeyState, key_state, keys_t, load_marks
from app.pages import Keyset, equal


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
        description='How the secret begins, as consoles show it ("sk-1a2b3c4d", or '
        '"sk-byts-1a2b3c4d" with CREDITGRAPH_API_KEY_PREFIX=sk-byts): tells keys apart in '
        "lists; changes when the key is rotated. The secret itself is never listed."
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
    # The key as the writer sees it, and its windows' marks (None: not read yet).
    _key: strawberry.Private[KeyState]
    _marks: strawberry.Private[dict[Window, WindowMarks] | None]
    _now: strawberry.Private[datetime]

    @strawberry.field(
        graphql_type=list[KeyWindow],
        description="One row per window the key has a limit for, shortest first; "
        "empty when it has none.",
    )
    def windows(self, info: Info) -> list[KeyWindow] | Awaitable[list[KeyWindow]]:
        # Keys listed for themselves come with their marks; keys shown beside other
        # objects (a usage record's) read them here, all of a query's in one read.
        if self._marks is not None or not self._key.limits:
            return _windows(self._key, self._marks or {})
        return self._read_windows(info)

    async def _read_windows(self, info: Info) -> list[KeyWindow]:
        now = self._now

        async def load(ids: list[int]) -> list[dict[Window, WindowMarks]]:
            second = int(now.timestamp())
            marks = await info.context.runtime.db.read(lambda conn: load_marks(conn, ids, second))
            return [marks.get(i, {}) for i in ids]

        marks = await info.context.loader("key_marks", load).load(self._key.id)
        return _windows(self._key, marks)

    @classmethod
    def of(cls, row: Any, marks: dict[Window, WindowMarks] | None, now: datetime) -> ApiKey:
        """The key of ``row``; without ``marks`` its windows are read when asked for."""
        key = key_state(row)
        used = key.spent + key.held
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
            _key=key,
            _marks=marks,
            _now=now,
        )


def _windows(key: KeyState, marks: dict[Window, WindowMarks]) -> list[KeyWindow]:
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
    return windows


# The organization's keys; ``id``: only that one (what an API key sees of them).
_LIST = Keyset(
    lambda: select(keys_t),
    (keys_t.c.created_at, keys_t.c.id),
    {"organization_id": equal(keys_t.c.organization_id), "id": equal(keys_t.c.id)},
)


def api_keys(conn: DBConnection, rows: Sequence[Any], now: datetime) -> list[ApiKey]:
    """``rows`` of the keys table as ApiKeys: the window marks of all in one query."""
    windowed = [row.id for row in rows if key_state(row).limits]
    marks = load_marks(conn, windowed, int(now.timestamp())) if windowed else {}
    return [ApiKey.of(row, marks.get(row.id, {}), now) for row in rows]


async def api_key_page(
    info: Info, organization_id: int, first: int, after: str | None
) -> Connection[ApiKey]:
    """The keys the caller may see, newest first: an API key sees only itself."""
    now = info.context.runtime.clock.now()
    values = {"organization_id": organization_id, "id": info.context.caller().api_key_id}
    return await page_connection(
        info, _LIST, values, first, after, lambda conn, rows: api_keys(conn, rows, now)
    )


_by_ids = Prebuilt(
    lambda dialect, _lock: select(keys_t).where(
        keys_t.c.organization_id == bindparam("organization_id"),
        in_list(keys_t.c.id, "ids", dialect),
    )
)


def keys_by_id(
    conn: DBConnection,
    principal: Principal,
    key_ids: list[int],
    now: datetime,
    *,
    windows: bool = True,
) -> list[ApiKey]:
    """Those of ``key_ids`` the caller may see, in one query (and one for their windows,
    or, without ``windows``, when a query asks for them)."""
    if principal.api_key_id is not None:
        key_ids = [i for i in key_ids if i == principal.api_key_id]
    if not key_ids:
        return []
    rows = _by_ids.rows(conn, {"organization_id": principal.organization_id, "ids": key_ids})
    if windows:
        return api_keys(conn, rows, now)
    return [ApiKey.of(row, None, now) for row in rows]


async def api_key_node(info: Info, key_id: int) -> ApiKey | None:
    """The key if the caller may see it (``node(id:)``, and mutations' answers)."""
    principal, now = info.context.caller(), info.context.runtime.clock.now()
    keys = await info.context.runtime.db.read(
        lambda conn: keys_by_id(conn, principal, [key_id], now)
    )
    return keys[0] if keys else None
