"""TIMER_SCHEDULE: the six-field NCRONTAB expression the Functions host builds the timer from.

The host rejects anything else when it indexes the function, and then the function simply never runs
(no error reaches our code), so we refuse it up front. Parsing and the next occurrences come from
croniter (``second_at_beginning=True`` gives NCRONTAB's ``{second} {minute} {hour} {day} {month}
{day-of-week}`` order; ``day_or=False`` gives NCrontab's rule that day-of-month and day-of-week must
both match). croniter accepts more than NCrontab does (five or seven fields, ``@hourly``, ``L``, ``W``,
``#``, ``?``, ``H``), so those are refused here before croniter sees the expression.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from croniter import croniter

_NAMES = {
    4: {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    5: {"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
}
_FIELD = re.compile(r"^[0-9A-Za-z*/,-]+$")
_FIELD_NAMES = ("second", "minute", "hour", "day", "month", "day-of-week")
EXAMPLE = "0 */5 * * * * (every five minutes)"


def schedule_problem(expression: str) -> str:
    """Why ``expression`` is not a schedule the Functions host accepts, or "" when it is one."""
    fields = expression.split()
    if len(fields) != 6:
        return (
            f"'{expression}' has {len(fields)} field(s); NCRONTAB needs six: "
            f"{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}, e.g. {EXAMPLE}"
        )
    for index, field in enumerate(fields):
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", field)}
        if not _FIELD.match(field) or words - _NAMES.get(index, set()):
            return (
                f"'{expression}': the {_FIELD_NAMES[index]} field '{field}' is not NCRONTAB "
                "(use numbers, *, ranges a-b, lists a,b and steps */n"
                + ("; names like Mon or Jan" if index >= 4 else "")
                + ")"
            )
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True, day_or=False)
        next_runs(expression, datetime(2000, 1, 1, tzinfo=UTC), 1)
    except (ValueError, KeyError, TypeError) as exc:
        return f"'{expression}' is not a valid NCRONTAB expression ({exc}), e.g. {EXAMPLE}"
    return ""


def next_runs(expression: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` UTC times the timer fires after ``after`` (Functions schedules run in UTC)."""
    it = croniter(expression, after.astimezone(UTC), second_at_beginning=True, day_or=False)
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]


def describe_next_runs(expression: str, after: datetime, count: int = 3) -> str:
    """``2026-11-29 15:05:00, 15:10:00, 15:15:00 UTC``: dates repeated only when they change."""
    parts: list[str] = []
    day = None
    for moment in next_runs(expression, after, count):
        text = moment.strftime("%H:%M:%S")
        if moment.date() != day:
            text = moment.strftime("%Y-%m-%d ") + text
            day = moment.date()
        parts.append(text)
    return ", ".join(parts) + " UTC"
