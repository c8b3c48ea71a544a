"""Where the bundled NEPSE data lives inside the repository: the sample and the whole market."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_INDEX_FILE",
    "MARKET_DIR",
    "SAMPLE_DIR",
    "market_path",
    "sample_path",
]

#: ``data/nepse`` at the repository root (this file is ``nepse_perf/data/paths.py``).
_SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "data" / "nepse"

#: The sample's per-symbol files (24 stocks + ``NEPSE_INDEX``) from
#: ``binayabaral/nepal-market-data``: 66,677 rows, the notebooks' quick default.
SAMPLE_DIR: Path = _SAMPLE_ROOT / "nepal-market-data"

#: The same directory under its older name.
DEFAULT_DATA_DIR: Path = SAMPLE_DIR

#: The whole market of the same source: 387 files (the sample's 25 as relative links into
#: :data:`SAMPLE_DIR`, so no file is stored twice), 447,164 data rows.
MARKET_DIR: Path = _SAMPLE_ROOT / "market"

#: The 1997-2019 NEPSE index history from ``owstron/capstone2020`` (symbol ``nepse_index``).
DEFAULT_INDEX_FILE: Path = _SAMPLE_ROOT / "capstone2020" / "nepse_index.csv"


def _checked(directory: Path, what: str) -> Path:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"NEPSE {what} not found at {directory}; it ships only with a source checkout of "
            "the repository (see data/nepse/README.md)"
        )
    return directory


def sample_path() -> Path:
    """Return :data:`SAMPLE_DIR`, the directory of the bundled sample's per-symbol CSV files.

    The directory is located relative to the installed package file, so it only exists in a
    source checkout of the repository.  Raises ``FileNotFoundError`` with the path it looked
    at when the directory is missing (for example in a wheel install without the data).
    """
    return _checked(DEFAULT_DATA_DIR, "sample data")


def market_path() -> Path:
    """Return :data:`MARKET_DIR`, the directory of the whole market's 387 CSV files.

    As :func:`sample_path`: located relative to the package, so only in a source checkout;
    ``FileNotFoundError`` naming the path when it is missing.  ``load_prices(market_path())``
    loads all of it (447,160 rows after the 4 bars without a published high, low or close).
    """
    return _checked(MARKET_DIR, "market data")
