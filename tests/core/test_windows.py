"""Rolling windows at their edges: spend counts iff now - W < second <= now."""

from __future__ import annotations

from app.keys.windows import LONGEST, Window, WindowMarks, resets_at, spent_in_window, window_start


def test_window_lengths() -> None:
    assert Window.FIVE_HOURS.seconds == 18_000
    assert Window.ONE_DAY.seconds == 86_400
    assert LONGEST == Window.SEVEN_DAYS.seconds == 604_800


def test_window_start_is_the_last_second_outside() -> None:
    now = 1_000_000
    start = window_start(now, Window.FIVE_HOURS)
    # A spend 5 h + 1 s old (second now - 18001) and one exactly 5 h old are outside;
    # one 4 h 59 min 59 s old is inside.
    assert now - 18_001 <= start
    assert now - 18_000 <= start
    assert now - 17_999 > start


def test_spent_and_reset() -> None:
    marks = WindowMarks(baseline=400, first_spend_second=1_000)
    assert spent_in_window(1_000, marks) == 600
    assert resets_at(marks, Window.ONE_DAY) == 1_000 + 86_400
    assert resets_at(WindowMarks(baseline=0, first_spend_second=None), Window.ONE_DAY) is None
