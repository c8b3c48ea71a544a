"""NEPSE's regular trading weekdays, by date: Sunday-Thursday, then Monday-Friday.

The shipped prices show the switch (``shared/data/nepse/SOURCE.md``, notebook 00): the last
Sunday session is 2026-04-05 and Friday sessions start on 2026-04-10, so a date before
:data:`MONDAY_FRIDAY_FROM` has the Sunday-Thursday week and a date from it on the
Monday-Friday week. This is the *regular* week only: holidays, closures, the Monday-Friday
years of 1999-2005, the Friday sessions of 2022 and the odd Saturday are not modelled, so
the loader never uses it (missing sessions stay missing there); simulations that need a
plausible trading day do.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "MONDAY_FRIDAY",
    "MONDAY_FRIDAY_FROM",
    "SUNDAY_THURSDAY",
    "is_trading_weekday",
    "trading_weekdays",
    "weekdays_name",
]

#: pandas ``day_of_week`` numbers (Monday=0 ... Sunday=6).
SUNDAY_THURSDAY: tuple[int, ...] = (6, 0, 1, 2, 3)
MONDAY_FRIDAY: tuple[int, ...] = (0, 1, 2, 3, 4)

#: The first session of the Monday-Friday week (a Friday).
MONDAY_FRIDAY_FROM = pd.Timestamp("2026-04-10")


def trading_weekdays(date: str | pd.Timestamp) -> tuple[int, ...]:
    """The regular trading weekdays (pandas ``day_of_week`` numbers) in force on ``date``.

    Sunday-Thursday before :data:`MONDAY_FRIDAY_FROM`, Monday-Friday from it on; a
    timezone-aware ``date`` is read as its local calendar day.
    """
    day = pd.Timestamp(date).tz_localize(None).normalize()
    return MONDAY_FRIDAY if day >= MONDAY_FRIDAY_FROM else SUNDAY_THURSDAY


def weekdays_name(date: str | pd.Timestamp) -> str:
    """``"Sunday-Thursday"`` or ``"Monday-Friday"``: the regular week in force on ``date``."""
    return "Monday-Friday" if trading_weekdays(date) == MONDAY_FRIDAY else "Sunday-Thursday"


def is_trading_weekday(date: str | pd.Timestamp) -> bool:
    """Whether ``date`` falls on a regular trading weekday of its period (holidays ignored)."""
    return pd.Timestamp(date).day_of_week in trading_weekdays(date)
