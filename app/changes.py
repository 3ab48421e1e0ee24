"""Counters of committed writes, per organization: what tells a cached answer it is stale.

``Database`` counts every write it commits, after the commit, under the organizations the
write names (or under every organization when it names none). An answer read after
``version(org)`` was taken is current for as long as the version stays the same: a write
the read did not see was committed after the version was taken, so it moved the count.

Writes on other instances arrive through the event bus (``app.events_redis``): each
commit here is announced there, and each announcement there counts here. Counting
happens on the event loop's thread only, so the counters need no lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

# What ``announce`` is given: the organizations a write changed, or None for all of them.
Changed = Collection[int] | None


class Changes:
    def __init__(self) -> None:
        self._every = 0
        self._by_org: dict[int, int] = {}
        # Tells the other instances (the Redis bus); unset in one process.
        self.announce: Callable[[Changed], Awaitable[None]] | None = None

    def version(self, organization_id: int) -> tuple[int, int]:
        """Moves whenever a write to the organization (or to all of them) commits."""
        return self._every, self._by_org.get(organization_id, 0)

    def count(self, organizations: Changed) -> None:
        """Writes to ``organizations`` (None: to every one) committed."""
        if organizations is None:
            self._every += 1
            return
        by_org = self._by_org
        for organization_id in organizations:
            by_org[organization_id] = by_org.get(organization_id, 0) + 1

    async def committed(self, organizations: Changed) -> None:
        """A write of this process committed: counted here and told to the other
        instances."""
        self.count(organizations)
        if self.announce is not None:
            await self.announce(organizations)
