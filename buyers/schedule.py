"""Contract schedules: weekly open hours and closed dates in the buyer's time zone (pure).

Wall-clock semantics, chosen so that a schedule means what the buyer reads on their own clock:

- A window is a span of local wall time [opens, closes) on a weekday, in whole minutes. A closing
  time of 23:59 means "until midnight" (minute 1440), so Mon 09:00–23:59 followed by Tue
  00:00–06:00 is one continuous stretch.
- Spring forward: local times in the gap (02:00–02:59 in America/New_York) never happen, so a
  window lying wholly inside the gap is simply not open that day. A window that opens inside the
  gap opens at the first wall time that exists after it (03:00).
- Fall back: the repeated hour happens twice on the wall clock, so a window covering 01:00–02:00
  is open during both passes, and a window that closed earlier in the night reopens when the clock
  steps back into it.
- Closed dates are local calendar dates and close the whole local day, both passes of a repeated
  hour included. They apply to an always-open schedule too.

Seconds only matter at the edges: a moment is open iff its local minute of day lies in a window,
which is exact because every edge is a whole local minute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 1440
HORIZON_DAYS = 14
HORIZON = timedelta(days=HORIZON_DAYS)
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_ONE_DAY = timedelta(days=1)

Window = tuple[int, int]  # (open_minute, close_minute) since local midnight


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a contract buys, in its buyer's time zone. Build it with `Schedule.build`.

    `windows` holds, for each weekday (0 = Monday), sorted and merged (open_minute,
    close_minute) pairs in minutes since local midnight; close_minute may be 1440. A schedule built
    without windows is always open: every day is one 00:00–24:00 window, and `always_open` says so
    for display. `closed_notes` keeps the non-empty notes of `closed_dates`.
    """

    tz: ZoneInfo
    windows: tuple[tuple[Window, ...], ...]
    closed_dates: frozenset[date]
    closed_notes: tuple[tuple[date, str], ...]
    always_open: bool

    @classmethod
    def build(
        cls,
        tz_name: str,
        windows: Iterable[tuple[int, time, time]],
        closed_dates: Mapping[date, str] | Iterable[date | tuple[date, str]] = (),
    ) -> Schedule:
        """Return the schedule for (weekday, opens_at, closes_at) windows and closed dates.

        Closed dates may be a mapping of date to note, or dates and (date, note) pairs. Times are
        read to the minute; 23:59 closes at midnight. Raise ValueError for a window that does not
        open before it closes or has a weekday outside 0–6.
        """
        per_day: list[list[Window]] = [[] for _ in DAY_NAMES]
        for weekday, opens_at, closes_at in windows:
            if not 0 <= weekday <= 6:
                raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {weekday}")
            opens = opens_at.hour * 60 + opens_at.minute
            closes = closes_at.hour * 60 + closes_at.minute
            if closes == MINUTES_PER_DAY - 1:
                closes = MINUTES_PER_DAY
            if opens >= closes:
                raise ValueError(
                    f"window {opens_at:%H:%M}–{closes_at:%H:%M} must open before close"
                )
            per_day[weekday].append((opens, closes))
        always_open = not any(per_day)
        if always_open:
            per_day = [[(0, MINUTES_PER_DAY)] for _ in DAY_NAMES]

        pairs = closed_dates.items() if isinstance(closed_dates, Mapping) else closed_dates
        notes: dict[date, str] = {}
        for item in pairs:
            day, note = (item, "") if isinstance(item, date) else item
            if isinstance(day, datetime):
                # A datetime never equals a date, so it would silently close nothing.
                raise TypeError(f"closed dates must be dates, not datetimes: {day!r}")
            notes[day] = (note or "").strip() or notes.get(day, "")
        return cls(
            tz=ZoneInfo(tz_name),
            windows=tuple(_merge(day) for day in per_day),
            closed_dates=frozenset(notes),
            closed_notes=tuple(sorted((day, note) for day, note in notes.items() if note)),
            always_open=always_open,
        )


def _merge(windows: list[Window]) -> tuple[Window, ...]:
    merged: list[Window] = []
    for opens, closes in sorted(windows):
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return tuple(merged)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def is_open(schedule: Schedule, now: datetime) -> bool:
    """Return whether the contract buys at `now` (aware), judged on the buyer's wall clock."""
    _require_aware(now)
    local = now.astimezone(schedule.tz)
    if schedule.closed_dates and local.date() in schedule.closed_dates:
        return False
    minute = local.hour * 60 + local.minute
    for opens, closes in schedule.windows[local.weekday()]:
        if minute < opens:
            return False
        if minute < closes:
            return True
    return False


def next_opening(schedule: Schedule, now: datetime) -> datetime | None:
    """Return the first moment at or after `now` when the contract buys, in the buyer's zone.

    Return `now` itself (exactly, converted to the buyer's zone) when it is open, and None when
    nothing opens within the next 14 days (24-hour days, counted from `now`).
    """
    if is_open(schedule, now):
        return now.astimezone(schedule.tz)
    tz = schedule.tz
    start = now.astimezone(UTC)
    horizon_end = start + HORIZON
    offset = _offset(start, tz)
    # Walk stretches of constant UTC offset, in which wall time runs in step with UTC; a DST
    # change starts a new stretch whose wall time jumps forward (gap) or back (repeated hour).
    while start < horizon_end:
        end = min(start + _ONE_DAY, horizon_end)
        end_offset = _offset(end, tz)
        if end_offset != offset:
            # Assumes a zone changes its offset at most once a day, which holds in the tz database.
            end = offset_change(tz, start, end, offset)
            end_offset = _offset(end, tz)
        found = _first_open_between(schedule, start, end, offset)
        if found is not None:
            return found.astimezone(tz)
        start, offset = end, end_offset
    return None


def _offset(instant: datetime, tz: ZoneInfo) -> timedelta:
    # A ZoneInfo has an offset for every instant; utcoffset() is only typed as optional.
    return cast("timedelta", instant.astimezone(tz).utcoffset())


def offset_change(tz: ZoneInfo, start: datetime, end: datetime, offset: timedelta) -> datetime:
    """Return the instant in (start, end] where the zone leaves `offset`, to the second."""
    # Offsets change on whole UTC seconds; search whole seconds since the epoch.
    low = (start - _EPOCH) // _SECOND
    high = -((_EPOCH - end) // _SECOND)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(_EPOCH + middle * _SECOND, tz) == offset:
            low = middle
        else:
            high = middle
    return _EPOCH + high * _SECOND


def _first_open_between(
    schedule: Schedule, start: datetime, end: datetime, offset: timedelta
) -> datetime | None:
    """Return the first open instant in [start, end), a stretch with one UTC offset, in UTC."""
    wall_start = (start + offset).replace(tzinfo=None)
    wall_end = (end + offset).replace(tzinfo=None)
    day = wall_start.date()
    last_day = (wall_end - timedelta(microseconds=1)).date()
    while day <= last_day:
        if day not in schedule.closed_dates:
            midnight = datetime.combine(day, time())
            for opens, closes in schedule.windows[day.weekday()]:
                first = max(midnight + timedelta(minutes=opens), wall_start)
                if first < min(midnight + timedelta(minutes=closes), wall_end):
                    return (first - offset).replace(tzinfo=UTC)
        day += _ONE_DAY
    return None


def describe_closed(schedule: Schedule, now: datetime) -> str:
    """Say in plain words why the contract does not buy at `now`, e.g. for an exclusion reason.

    "closed today (Thanksgiving)", "outside schedule: opens Mon 09:00 America/Chicago", or
    "outside schedule: no opening in the next 14 days". The date is added when the opening is a
    week or more away, so that "Mon" cannot be read as the coming Monday. Return "open" when the
    contract is open at `now`.
    """
    _require_aware(now)
    today = now.astimezone(schedule.tz).date()
    if today in schedule.closed_dates:
        note = dict(schedule.closed_notes).get(today)
        return f"closed today ({note})" if note else "closed today"
    if is_open(schedule, now):
        return "open"
    opening = next_opening(schedule, now)
    if opening is None:
        return f"outside schedule: no opening in the next {HORIZON_DAYS} days"
    when = f"{DAY_NAMES[opening.weekday()]} {opening:%H:%M}"
    if (opening.date() - today).days >= 7:
        when = f"{DAY_NAMES[opening.weekday()]} {opening:%Y-%m-%d %H:%M}"
    return f"outside schedule: opens {when} {schedule.tz.key}"


def describe_hours(schedule: Schedule) -> str:
    """Return the weekly hours for display, e.g. "Mon–Fri 09:00–17:00, Sat 10:00–14:00 (UTC)".

    Consecutive weekdays with the same hours share one entry; midnight at the end of a day reads
    24:00.
    """
    if schedule.always_open:
        return "always open"
    groups: list[tuple[int, int, tuple[Window, ...]]] = []
    for weekday, windows in enumerate(schedule.windows):
        if not windows:
            continue
        if groups and groups[-1][1] == weekday - 1 and groups[-1][2] == windows:
            groups[-1] = (groups[-1][0], weekday, windows)
        else:
            groups.append((weekday, weekday, windows))
    if not groups:
        return f"never open ({schedule.tz.key})"
    parts = []
    for first, last, windows in groups:
        days = DAY_NAMES[first] if first == last else f"{DAY_NAMES[first]}–{DAY_NAMES[last]}"
        hours = " & ".join(f"{_hhmm(opens)}–{_hhmm(closes)}" for opens, closes in windows)
        parts.append(f"{days} {hours}")
    return f"{', '.join(parts)} ({schedule.tz.key})"


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --- Weekly hours typed as text (team members' working hours) ---------------------------------

_DAY_INDEX = {name.lower(): index for index, name in enumerate(DAY_NAMES)}
_DAY_WORDS = {
    "daily": (0, 6),
    "weekdays": (0, 4),
    "weekends": (5, 6),
}
_GROUP_RE = re.compile(r"^\s*(?P<days>[A-Za-z]+(?:\s*[-–—]\s*[A-Za-z]+)?)\s+(?P<hours>.+?)\s*$")
_WINDOW_RE = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*[-–—]\s*(\d{1,2})(?::(\d{2}))?\s*$")


def _day(word: str) -> int:
    index = _DAY_INDEX.get(word.strip().lower()[:3])
    if index is None:
        raise ValueError(f"{word.strip()!r} is not a day: use Mon, Tue, Wed, Thu, Fri, Sat, Sun")
    return index


def _days(text: str) -> list[int]:
    word = text.strip().lower()
    if word in _DAY_WORDS:
        first, last = _DAY_WORDS[word]
    else:
        parts = re.split(r"\s*[-–—]\s*", word)
        first, last = _day(parts[0]), _day(parts[-1])
    if last < first:  # Sat–Mon wraps over the week's end
        return [*range(first, 7), *range(last + 1)]
    return list(range(first, last + 1))


def _clock(hours: str, minutes: str | None, text: str) -> int:
    value = int(hours) * 60 + int(minutes or 0)
    if int(minutes or 0) > 59 or value > MINUTES_PER_DAY:
        raise ValueError(f"{text.strip()!r}: not a time of day")
    return value


def parse_hours(text: str) -> list[tuple[int, time, time]]:
    """Read weekly hours as people write them and `describe_hours` prints them.

    "Mon–Fri 09:00–17:00, Sat 10:00–14:00", "weekdays 8-12 & 13-17", "daily 00:00-24:00";
    groups are separated by commas, semicolons or new lines. A window that closes before it
    opens runs overnight into the next day ("Fri 22:00–06:00"). Return (weekday, opens_at,
    closes_at) windows for `Schedule.build` (a close at midnight is 23:59); blank text is no
    windows (always open). Raise ValueError naming the part that cannot be read.
    """
    windows: list[tuple[int, time, time]] = []
    for group in re.split(r"[,;\n]", text or ""):
        if not group.strip():
            continue
        match = _GROUP_RE.match(group)
        if match is None:
            raise ValueError(f"{group.strip()!r}: write days then hours, e.g. Mon-Fri 09:00-17:00")
        days = _days(match["days"])
        for part in match["hours"].split("&"):
            window = _WINDOW_RE.match(part)
            if window is None:
                raise ValueError(f"{part.strip()!r}: write hours as 09:00-17:00")
            opens = _clock(window[1], window[2], part)
            closes = _clock(window[3], window[4], part)
            if opens in (closes, MINUTES_PER_DAY):
                raise ValueError(f"{part.strip()!r}: a window must open before it closes")
            for day in days:
                if opens < closes:
                    windows.append((day, _time_of(opens), _time_of(closes)))
                    continue
                # Overnight: until midnight, then on from the next day's midnight.
                windows.append((day, _time_of(opens), _time_of(MINUTES_PER_DAY)))
                if closes:
                    windows.append(((day + 1) % 7, time(0, 0), _time_of(closes)))
    return windows


def _time_of(minute: int) -> time:
    # Schedule.build reads 23:59 as "until midnight".
    return time(23, 59) if minute >= MINUTES_PER_DAY else time(minute // 60, minute % 60)
