"""Rolling spend windows: exact, second by second, with no calendar resets.

A spend billed at second ``s`` counts in a window of length ``W`` at time ``now``
exactly when ``now - W < s <= now`` (whole Unix seconds). A spend 5 h + 1 s old no
longer counts in the 5 h window; one 4 h 59 min 59 s old still does.

Each key keeps its lifetime spend and a *spend mark* per billed second (the lifetime
spend at the end of that second). Spend in a window is the lifetime spend minus the
newest mark at or before the window's start: one index seek, never a scan of usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Window(StrEnum):
    FIVE_HOURS = "5h"
    ONE_DAY = "1d"
    SEVEN_DAYS = "7d"

    @property
    def seconds(self) -> int:
        return _SECONDS[self]


_SECONDS = {Window.FIVE_HOURS: 5 * 3600, Window.ONE_DAY: 86400, Window.SEVEN_DAYS: 7 * 86400}
WINDOWS = tuple(Window)
LONGEST = max(_SECONDS.values())


@dataclass(frozen=True, slots=True)
class WindowMarks:
    """What the spend marks say about one window at one moment."""

    # Lifetime spend at the window's start (the newest mark at or before it).
    baseline: int
    # The first second inside the window with billed spend, or None.
    first_spend_second: int | None


def window_start(now_second: int, window: Window) -> int:
    """The last second that is already outside the window."""
    return now_second - window.seconds


def spent_in_window(lifetime_spent: int, marks: WindowMarks) -> int:
    return lifetime_spent - marks.baseline


def resets_at(marks: WindowMarks, window: Window) -> int | None:
    """Unix second when the oldest spend inside the window leaves it (None: nothing to leave)."""
    if marks.first_spend_second is None:
        return None
    return marks.first_spend_second + window.seconds
