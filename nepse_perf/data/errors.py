"""The one exception type of the data layer."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data: the message names the file and, where there is one, the 1-based line.

    Raised by :func:`nepse_perf.data.load_prices` for structural problems (unreadable or binary
    file, empty file, missing column, unparseable date, bad price, conflicting duplicate
    date, ...) and, with ``strict=True``, for price anomalies.  It subclasses ``ValueError`` so
    callers that already catch ``ValueError`` keep working.
    """
