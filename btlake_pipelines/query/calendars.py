"""Which days a market trades: btlake market codes mapped to exchange calendars.

The sessions come from ``exchange_calendars`` (holidays, weekends and special closes of each
exchange, maintained by its authors), never from a hand-written list. A market code that is a
calendar name or alias of that package (``XNYS``, ``XNAS``, ``XCME``, ``XLON``, ``NYSE``...)
uses that calendar; ``BTLAKE_CALENDARS`` maps other codes (``"NYSE_ARCA=XNYS,LSE=XLON"``) or
takes a calendar away (``"COIN=none"``). A market without a calendar (a crypto venue) trades
every day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.settings import current

#: Values of a mapping that mean "no calendar: every day is a session".
NO_CALENDAR = ("", "none", "-", "24/7", "always")


@dataclass(frozen=True)
class MarketDays:
    """The days of ``[first, last]`` for one market: its sessions, and the days that are not
    (weekends and exchange holidays) split into weekend days and holidays."""

    market: str
    calendar: str | None
    sessions: list[date]
    holidays: list[date]
    weekends: list[date]


def calendar_mapping(text: str | None = None) -> dict[str, str | None]:
    """The configured mapping (``BTLAKE_CALENDARS``, or ``text``): market code -> calendar
    name, None for "no calendar". A name the package does not know is refused here, naming
    the setting, rather than failing on the first query."""
    text = current().calendars if text is None else text
    out: dict[str, str | None] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        market, sep, name = item.partition("=")
        market, name = market.strip(), name.strip()
        if not sep or not market:
            raise BtlakeError(f"bad BTLAKE_CALENDARS entry {item.strip()!r}: write "
                              "MARKET=CALENDAR, e.g. NYSE=XNYS (or MARKET=none)")
        if name.lower() in NO_CALENDAR:
            out[market] = None
        elif name.upper() in _known():
            out[market] = name.upper()
        else:
            raise BtlakeError(f"bad BTLAKE_CALENDARS entry {item.strip()!r}: {name!r} is not "
                              "an exchange_calendars calendar (e.g. XNYS, XNAS, XCME, XLON)")
    return out


def calendar_for(market: str, mapping: dict[str, str | None] | None = None) -> str | None:
    """The calendar of ``market``: the configured one, else the calendar of that name (or
    alias), else None (every day trades)."""
    mapping = calendar_mapping() if mapping is None else mapping
    if market in mapping:
        return mapping[market]
    return market.upper() if market.upper() in _known() else None


def market_days(market: str, first: date, last: date,
                mapping: dict[str, str | None] | None = None) -> MarketDays:
    """Sessions, holidays and weekend days of ``market`` from ``first`` to ``last``
    (inclusive)."""
    name = calendar_for(market, mapping)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)] \
        if last >= first else []
    if name is None:
        return MarketDays(market, None, days, [], [])
    listed, weekmask = _calendar_days(name, first.year, last.year)
    sessions = set(listed)
    open_days = [d for d in days if d in sessions]
    weekends = [d for d in days if d not in sessions and weekmask[d.weekday()] == "0"]
    holidays = [d for d in days if d not in sessions and weekmask[d.weekday()] == "1"]
    return MarketDays(market, name, open_days, holidays, weekends)


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    import exchange_calendars as xcals

    return frozenset(n.upper() for n in xcals.get_calendar_names(include_aliases=True))


@lru_cache(maxsize=64)
def _calendar_days(name: str, first_year: int, last_year: int
                   ) -> tuple[tuple[date, ...], str]:
    """The sessions of calendar ``name`` over whole years, clipped to the years the calendar
    knows, and its weekmask (``"1111100"``: the weekdays it trades), both from one calendar
    built for those years (cached: building a calendar takes a moment)."""
    import warnings

    import exchange_calendars as xcals

    with warnings.catch_warnings():  # its pandas deprecations are not the user's business
        warnings.simplefilter("ignore")
        try:
            cal = xcals.get_calendar(name, start=f"{first_year}-01-01",
                                     end=f"{last_year}-12-31")
        except Exception:  # years out of its bounds (errors vary by calendar): what it has
            cal = xcals.get_calendar(name)
        weekmask = str(cal.weekmask)
        lo = max(date(first_year, 1, 1), cal.first_session.date())
        hi = min(date(last_year, 12, 31), cal.last_session.date())
        if hi < lo:
            return (), weekmask
        return tuple(ts.date() for ts in cal.sessions_in_range(lo.isoformat(),
                                                               hi.isoformat())), weekmask
