"""The one exception type of the data layer, and the message that names failed symbols."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DataError", "describe_failures"]


class DataError(ValueError):
    """Bad input data: the message names the file and, where there is one, the 1-based line.

    Raised by :func:`nepse_perf.data.load_prices` for structural problems (unreadable or binary
    file, empty file, missing column, unparseable date, bad price, conflicting duplicate
    date, ...) and, with ``strict=True``, for price anomalies.  It subclasses ``ValueError`` so
    callers that already catch ``ValueError`` keep working.
    """


def describe_failures(failed: Mapping[str, str], verb: str) -> str:
    """One line naming the symbols that failed: ``"N symbol(s) <verb>: A: why; B: why"``.

    ``failed`` maps symbol -> reason; the first three symbols in sorted order are shown with
    their reasons and the rest counted (``" (and 4 more)"``). Used by the errors that carry a
    partial per-symbol result (``ParallelError``, ``FetchError``), with ``verb`` saying what
    went wrong (``"failed"``, ``"could not be fetched"``).
    """
    names = sorted(failed)
    shown = "; ".join(f"{s}: {failed[s]}" for s in names[:3])
    more = f" (and {len(names) - 3} more)" if len(names) > 3 else ""
    return f"{len(names)} symbol(s) {verb}: {shown}{more}"
