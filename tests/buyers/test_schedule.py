from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buyers.schedule import (
    HORIZON,
    Schedule,
    describe_closed,
    describe_hours,
    is_open,
    next_opening,
)

CHICAGO = "America/Chicago"
NEW_YORK = "America/New_York"
WEEKDAYS = range(5)
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def office_hours(tz_name: str = CHICAGO, closed=()) -> Schedule:
    return Schedule.build(
        tz_name,
        [(day, time(9), time(17)) for day in WEEKDAYS] + [(SAT, time(10), time(14))],
        closed,
    )


def at(tz_name: str, *args: int, fold: int = 0) -> datetime:
    """Return a wall time in a zone as a UTC instant."""
    return datetime(*args, tzinfo=ZoneInfo(tz_name), fold=fold).astimezone(UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Schedule.build


def test_it_sorts_and_merges_overlapping_and_touching_windows():
    schedule = Schedule.build(
        CHICAGO,
        [
            (MON, time(13), time(17)),
            (MON, time(9), time(12)),
            (MON, time(11), time(13)),
            (MON, time(18), time(19)),
            (TUE, time(8), time(9)),
        ],
        (),
    )

    assert schedule.windows[MON] == ((540, 1020), (1080, 1140))
    assert schedule.windows[TUE] == ((480, 540),)
    assert schedule.windows[WED] == ()
    assert not schedule.always_open


def test_it_reads_a_closing_time_of_2359_as_midnight():
    schedule = Schedule.build(CHICAGO, [(FRI, time(22), time(23, 59))], ())

    assert schedule.windows[FRI] == ((1320, 1440),)


def test_a_schedule_without_windows_is_always_open():
    schedule = Schedule.build(CHICAGO, [], ())

    assert schedule.always_open
    assert all(day == ((0, 1440),) for day in schedule.windows)


def test_it_accepts_closed_dates_as_a_mapping_pairs_or_plain_dates():
    christmas, new_year = date(2026, 12, 25), date(2027, 1, 1)

    from_mapping = Schedule.build(CHICAGO, [], {christmas: "Christmas", new_year: ""})
    from_pairs = Schedule.build(CHICAGO, [], [(christmas, "Christmas"), (new_year, "")])
    from_dates = Schedule.build(CHICAGO, [], [christmas, new_year])

    assert from_mapping == from_pairs
    assert from_mapping.closed_dates == from_dates.closed_dates == {christmas, new_year}
    assert from_mapping.closed_notes == ((christmas, "Christmas"),)
    assert from_dates.closed_notes == ()


def test_a_schedule_is_hashable_so_callers_can_cache_on_it():
    assert hash(office_hours()) == hash(office_hours())


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ((MON, time(17), time(9)), "open before"),
        ((MON, time(9), time(9)), "open before"),
        ((7, time(9), time(17)), "weekday"),
    ],
)
def test_it_rejects_an_invalid_window(window, message):
    with pytest.raises(ValueError, match=message):
        Schedule.build(CHICAGO, [window], ())


def test_it_rejects_a_datetime_as_a_closed_date():
    with pytest.raises(TypeError, match="dates"):
        Schedule.build(CHICAGO, [], [datetime(2026, 12, 25, tzinfo=UTC)])


# is_open


def test_it_is_open_from_exactly_the_opening_time_until_just_before_the_closing_time():
    schedule = office_hours()

    assert not is_open(schedule, at(CHICAGO, 2026, 1, 14, 8, 59, 59, 999999))
    assert is_open(schedule, at(CHICAGO, 2026, 1, 14, 9, 0))
    assert is_open(schedule, at(CHICAGO, 2026, 1, 14, 16, 59, 59, 999999))
    assert not is_open(schedule, at(CHICAGO, 2026, 1, 14, 17, 0))


def test_it_judges_by_the_buyers_wall_clock_not_utc():
    schedule = office_hours()

    # 15:30 UTC on a Wednesday is 09:30 in Chicago; 23:30 UTC is 17:30.
    assert is_open(schedule, utc(2026, 1, 14, 15, 30))
    assert not is_open(schedule, utc(2026, 1, 14, 23, 30))


def test_a_window_closing_at_2359_runs_into_the_next_days_window_without_a_gap():
    schedule = Schedule.build(CHICAGO, [(MON, time(20), time(23, 59)), (TUE, time(0), time(2))], ())

    assert is_open(schedule, at(CHICAGO, 2026, 1, 12, 23, 59, 30))
    assert is_open(schedule, at(CHICAGO, 2026, 1, 12, 23, 59, 59, 999999))
    assert is_open(schedule, at(CHICAGO, 2026, 1, 13, 0, 0))
    assert not is_open(schedule, at(CHICAGO, 2026, 1, 13, 2, 0))


def test_a_closed_date_closes_the_whole_local_day():
    schedule = office_hours(closed={date(2026, 11, 26): "Thanksgiving"})

    assert not is_open(schedule, at(CHICAGO, 2026, 11, 26, 12, 0))
    assert is_open(schedule, at(CHICAGO, 2026, 11, 27, 12, 0))


def test_a_closed_date_is_the_buyers_date_not_the_utc_date():
    schedule = Schedule.build(CHICAGO, [], [date(2026, 12, 31)])

    # 03:00 UTC on 1 January is 21:00 on 31 December in Chicago.
    assert not is_open(schedule, utc(2027, 1, 1, 3, 0))
    assert is_open(schedule, utc(2027, 1, 1, 7, 0))


def test_a_closed_date_closes_an_always_open_schedule():
    schedule = Schedule.build(CHICAGO, [], [date(2026, 12, 25)])

    assert is_open(schedule, at(CHICAGO, 2026, 12, 24, 23, 59))
    assert not is_open(schedule, at(CHICAGO, 2026, 12, 25, 0, 0))


def test_it_refuses_a_naive_moment():
    with pytest.raises(ValueError, match="aware"):
        is_open(office_hours(), datetime(2026, 1, 14, 12, 0))  # noqa: DTZ001


def test_a_zone_without_dst_and_one_with_it_differ_on_the_same_summer_instant():
    phoenix = office_hours("America/Phoenix")
    denver = office_hours("America/Denver")
    summer = utc(2026, 7, 1, 15, 30)  # Wednesday: 08:30 in Phoenix (MST), 09:30 in Denver (MDT)
    winter = utc(2026, 1, 14, 15, 30)  # Wednesday: 08:30 in both

    assert not is_open(phoenix, summer)
    assert is_open(denver, summer)
    assert describe_closed(phoenix, summer) == "outside schedule: opens Wed 09:00 America/Phoenix"
    assert not is_open(phoenix, winter)
    assert not is_open(denver, winter)


# DST in America/New_York: 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00 UTC);
# 2026-11-01 02:00 EDT falls back to 01:00 EST (06:00 UTC), so 01:00–01:59 happens twice.


def test_a_window_inside_the_spring_forward_gap_is_never_open_that_day():
    schedule = Schedule.build(NEW_YORK, [(SUN, time(2), time(3))], ())
    minutes = [utc(2026, 3, 8, 4, 0) + timedelta(minutes=m) for m in range(6 * 60)]

    assert not any(is_open(schedule, moment) for moment in minutes)
    assert is_open(schedule, at(NEW_YORK, 2026, 3, 15, 2, 30))  # a week later, it exists


def test_a_window_straddling_the_gap_keeps_its_existing_part():
    schedule = Schedule.build(NEW_YORK, [(SUN, time(1, 30), time(2, 30))], ())

    assert is_open(schedule, utc(2026, 3, 8, 6, 45))  # 01:45 EST
    assert not is_open(schedule, utc(2026, 3, 8, 7, 0))  # 03:00 EDT


def test_a_window_opening_inside_the_gap_opens_at_the_first_minute_after_it():
    schedule = Schedule.build(NEW_YORK, [(SUN, time(2, 30), time(4))], ())
    before = at(NEW_YORK, 2026, 3, 8, 1, 0)

    opening = next_opening(schedule, before)

    assert opening.astimezone(UTC) == utc(2026, 3, 8, 7, 0)
    assert (opening.hour, opening.minute, opening.tzinfo) == (3, 0, ZoneInfo(NEW_YORK))
    assert describe_closed(schedule, before) == "outside schedule: opens Sun 03:00 America/New_York"


def test_a_window_over_the_repeated_hour_is_open_during_both_passes():
    schedule = Schedule.build(NEW_YORK, [(SUN, time(1), time(2))], ())

    assert is_open(schedule, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert is_open(schedule, utc(2026, 11, 1, 6, 30))  # 01:30 EST
    assert not is_open(schedule, utc(2026, 11, 1, 7, 0))  # 02:00 EST
    assert not is_open(schedule, utc(2026, 11, 1, 4, 59))  # 00:59 EDT


def test_the_clock_falling_back_into_a_window_reopens_it():
    schedule = Schedule.build(NEW_YORK, [(SUN, time(0, 30), time(1, 15))], ())
    after_first_close = utc(2026, 11, 1, 5, 20)  # 01:20 EDT

    assert not is_open(schedule, after_first_close)
    opening = next_opening(schedule, after_first_close)
    assert opening.astimezone(UTC) == utc(2026, 11, 1, 6, 0)  # 01:00 EST
    assert opening.fold == 1


def test_next_opening_in_the_second_pass_of_the_repeated_hour():
    schedule = Schedule.build(NEW_YORK, [(SUN, time(1, 20), time(1, 40))], ())

    # 01:50 EDT is after the first pass; 01:10 EST is in the second pass, before 01:20 EST.
    assert next_opening(schedule, utc(2026, 11, 1, 5, 50)).astimezone(UTC) == utc(
        2026, 11, 1, 6, 20
    )
    assert next_opening(schedule, utc(2026, 11, 1, 6, 10)).astimezone(UTC) == utc(
        2026, 11, 1, 6, 20
    )


# next_opening


def test_next_opening_is_now_when_open():
    now = utc(2026, 1, 14, 18, 0, 30, 123)

    opening = next_opening(office_hours(), now)

    assert opening == now
    assert opening.tzinfo == ZoneInfo(CHICAGO)


def test_next_opening_later_the_same_day():
    opening = next_opening(office_hours(), at(CHICAGO, 2026, 1, 14, 6, 15))

    assert opening.astimezone(UTC) == at(CHICAGO, 2026, 1, 14, 9, 0)


def test_next_opening_across_a_weekend():
    schedule = Schedule.build(CHICAGO, [(day, time(9), time(17)) for day in WEEKDAYS], ())

    opening = next_opening(schedule, at(CHICAGO, 2026, 1, 16, 17, 0))  # Friday, closing time

    assert opening.astimezone(UTC) == at(CHICAGO, 2026, 1, 19, 9, 0)
    assert opening.tzinfo == ZoneInfo(CHICAGO)


def test_next_opening_skips_a_closed_date():
    schedule = office_hours(closed={date(2026, 1, 17): "Inventory", date(2026, 1, 19): "MLK Day"})

    opening = next_opening(schedule, at(CHICAGO, 2026, 1, 16, 18, 0))  # Friday evening

    assert opening.astimezone(UTC) == at(CHICAGO, 2026, 1, 20, 9, 0)  # Tuesday


def test_next_opening_is_none_beyond_fourteen_days():
    mondays = Schedule.build(CHICAGO, [(MON, time(9), time(17))], [date(2026, 1, 19)])

    tuesday = at(CHICAGO, 2026, 1, 13, 9, 0)
    assert next_opening(mondays, tuesday).astimezone(UTC) == at(CHICAGO, 2026, 1, 26, 9, 0)
    closed_again = Schedule.build(
        CHICAGO, [(MON, time(9), time(17))], [date(2026, 1, 19), date(2026, 1, 26)]
    )
    assert next_opening(closed_again, tuesday) is None


def test_next_opening_for_an_always_open_schedule_is_the_end_of_the_closed_day():
    schedule = Schedule.build(CHICAGO, [], {date(2026, 12, 25): "Christmas"})

    opening = next_opening(schedule, at(CHICAGO, 2026, 12, 25, 10, 0))

    assert opening.astimezone(UTC) == at(CHICAGO, 2026, 12, 26, 0, 0)


# describe_closed


def test_it_names_the_holiday_when_closed_today():
    schedule = office_hours(closed={date(2026, 11, 26): "Thanksgiving", date(2026, 12, 24): ""})

    assert describe_closed(schedule, at(CHICAGO, 2026, 11, 26, 12, 0)) == (
        "closed today (Thanksgiving)"
    )
    assert describe_closed(schedule, at(CHICAGO, 2026, 12, 24, 12, 0)) == "closed today"


def test_it_says_when_the_schedule_opens_next():
    schedule = Schedule.build(CHICAGO, [(day, time(9), time(17)) for day in WEEKDAYS], ())

    assert describe_closed(schedule, at(CHICAGO, 2026, 1, 17, 12, 0)) == (
        "outside schedule: opens Mon 09:00 America/Chicago"
    )


def test_it_adds_the_date_when_the_opening_is_a_week_or_more_away():
    mondays = Schedule.build(CHICAGO, [(MON, time(9), time(17))], [date(2026, 1, 19)])

    assert describe_closed(mondays, at(CHICAGO, 2026, 1, 13, 9, 0)) == (
        "outside schedule: opens Mon 2026-01-26 09:00 America/Chicago"
    )


def test_it_says_when_nothing_opens_within_the_horizon():
    schedule = Schedule.build(
        CHICAGO, [(MON, time(9), time(17))], [date(2026, 1, 19), date(2026, 1, 26)]
    )

    assert describe_closed(schedule, at(CHICAGO, 2026, 1, 13, 9, 0)) == (
        "outside schedule: no opening in the next 14 days"
    )


def test_it_says_open_when_asked_about_an_open_moment():
    assert describe_closed(office_hours(), at(CHICAGO, 2026, 1, 14, 10, 0)) == "open"


# describe_hours


def test_it_groups_consecutive_days_with_the_same_hours():
    assert describe_hours(office_hours()) == (
        "Mon–Fri 09:00–17:00, Sat 10:00–14:00 (America/Chicago)"
    )


def test_it_lists_split_hours_and_does_not_group_days_that_are_not_consecutive():
    schedule = Schedule.build(
        "Europe/London",
        [
            (MON, time(9), time(12)),
            (MON, time(13), time(17)),
            (WED, time(9), time(12)),
            (WED, time(13), time(17)),
            (SUN, time(20), time(23, 59)),
        ],
        (),
    )

    assert describe_hours(schedule) == (
        "Mon 09:00–12:00 & 13:00–17:00, Wed 09:00–12:00 & 13:00–17:00, Sun 20:00–24:00 "
        "(Europe/London)"
    )


def test_it_describes_a_schedule_without_windows_as_always_open():
    assert describe_hours(Schedule.build(CHICAGO, [], ())) == "always open"


# Properties over random instants, zones and window sets. Every zone here has whole-minute
# offsets from 2020 to 2035, so local minute boundaries fall on UTC minute boundaries and the
# schedule can only change state there: checking `now` and every UTC minute after it is
# exhaustive. Instants are compared in UTC: Python compares two datetimes in the same zone by
# wall time, ignoring fold, and never calls a repeated-hour time equal to one in another zone.

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
)
FIRST, LAST = datetime(2020, 1, 1), datetime(2035, 12, 31)  # noqa: DTZ001
PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None)


@cache
def transitions(tz_name: str) -> tuple[datetime, ...]:
    """Return the instants (to the minute) when the zone changes offset, 2020–2035."""
    tz = ZoneInfo(tz_name)
    found = []
    day = FIRST.replace(tzinfo=UTC)
    while day < LAST.replace(tzinfo=UTC):
        following = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = day, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
        day = following
    return tuple(found)


# Whole-minute wall times, biased towards the ends of the day (1439 is 23:59, meaning midnight),
# the DST hours and office hours.
MINUTES = st.one_of(
    st.sampled_from([0, 1439]),
    st.sampled_from([30, 60, 90, 120, 150, 180, 210, 540, 1020, 1410]),
    st.integers(0, 1439),
)
ANY_WEEKDAY = st.integers(0, 6)


def as_window(weekday: int, first: int, second: int) -> tuple[int, time, time]:
    if first == second:
        second = first + 1 if first < 1439 else first - 1
    opens, closes = sorted((first, second))
    return weekday, time(*divmod(opens, 60)), time(*divmod(closes, 60))


def windows(weekdays=ANY_WEEKDAY, minutes=MINUTES, min_size=0, max_size=6):
    """Draw (weekday, opens_at, closes_at) windows as an admin would enter them."""
    window = st.tuples(weekdays, minutes, minutes).map(lambda drawn: as_window(*drawn))
    return st.lists(window, min_size=min_size, max_size=max_size)


@st.composite
def cases(draw):
    """Draw (zone, now, windows, closed dates), with `now` often near a DST change or an edge."""
    tz_name = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(tz_name)
    drawn = draw(windows())
    aim = draw(st.sampled_from(["anywhere", "dst change", "window edge"]))
    if aim == "dst change" and transitions(tz_name):
        change = draw(st.sampled_from(transitions(tz_name)))
        now = change + timedelta(seconds=draw(st.integers(-6 * 3600, 6 * 3600)))
        if draw(st.booleans()):
            now = now.replace(second=0)
        # Hours on the day of the change with edges near the wall times on either side of it,
        # so that searches cross the change into (or out of) a window.
        walls = [(change - timedelta(microseconds=1)).astimezone(tz), change.astimezone(tz)]
        edges = sorted(
            {
                min(max(wall.hour * 60 + wall.minute + shift, 0), 1439)
                for wall in walls
                for shift in (-90, -60, -30, -1, 0, 1, 30, 60, 90)
            }
        )
        drawn += draw(
            windows(
                st.sampled_from(sorted({wall.weekday() for wall in walls})),
                st.sampled_from(edges),
                min_size=1,
                max_size=3,
            )
        )
    elif aim == "window edge" and drawn:
        weekday, opens_at, closes_at = draw(st.sampled_from(drawn))
        day = draw(st.dates(FIRST.date(), LAST.date()))
        day += timedelta(days=(weekday - day.weekday()) % 7)
        edge = datetime.combine(day, draw(st.sampled_from([opens_at, closes_at])))
        if edge.time() == time(23, 59):
            edge += timedelta(minutes=1)
        nudge = draw(st.sampled_from([0, -1, 1, -30_000_000, 30_000_000, 59_999_999]))
        edge = edge.replace(tzinfo=tz, fold=draw(st.integers(0, 1)))
        now = edge.astimezone(UTC) + timedelta(microseconds=nudge)
    else:
        now = draw(st.datetimes(FIRST, LAST, timezones=st.just(UTC)))
    closed = {now.date() + timedelta(days=d) for d in draw(st.lists(st.integers(-1, 9)))}
    return tz_name, now, drawn, closed


def reference_is_open(tz_name, drawn_windows, closed, now: datetime) -> bool:
    """Decide from the local wall time and the windows as entered, without Schedule."""
    local = now.astimezone(ZoneInfo(tz_name))
    if local.date() in closed:
        return False
    if not drawn_windows:
        return True
    wall = local.time()
    return any(
        weekday == local.weekday() and opens <= wall and (wall < closes or closes == time(23, 59))
        for weekday, opens, closes in drawn_windows
    )


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(cases())
def test_is_open_agrees_with_the_wall_clock_reference(case):
    tz_name, now, drawn, closed = case

    schedule = Schedule.build(tz_name, drawn, closed)

    assert is_open(schedule, now) == reference_is_open(tz_name, drawn, closed, now)


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(cases())
def test_next_opening_is_the_first_open_moment_from_now(case):
    tz_name, now, drawn, closed = case
    schedule = Schedule.build(tz_name, drawn, closed)

    opening = next_opening(schedule, now)

    if opening is None:
        until = now + HORIZON
    else:
        until = opening.astimezone(UTC)
        assert until >= now
        assert until <= now + HORIZON
        assert opening.tzinfo == ZoneInfo(tz_name)
        assert is_open(schedule, opening)
        assert reference_is_open(tz_name, drawn, closed, opening)
        if until > now:
            assert not reference_is_open(tz_name, drawn, closed, until - timedelta(microseconds=1))
    moment = now
    while moment < until:
        assert not reference_is_open(tz_name, drawn, closed, moment), moment
        moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(cases())
def test_next_opening_of_an_open_moment_is_that_very_moment(case):
    tz_name, now, drawn, closed = case
    schedule = Schedule.build(tz_name, drawn, closed)

    if is_open(schedule, now):
        # Exact to the microsecond: the instant itself, shown in the buyer's zone.
        assert next_opening(schedule, now).astimezone(UTC) == now
