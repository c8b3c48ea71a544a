"""Where the bundled NEPSE sample lives inside the repository."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_INDEX_FILE", "sample_path"]

#: ``data/nepse`` at the repository root (this file is ``nepse_perf/data/paths.py``).
_SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "data" / "nepse"

#: The per-symbol files (24 stocks + ``NEPSE_INDEX``) from ``binayabaral/nepal-market-data``.
DEFAULT_DATA_DIR: Path = _SAMPLE_ROOT / "nepal-market-data"

#: The 1997-2019 NEPSE index history from ``owstron/capstone2020`` (symbol ``nepse_index``).
DEFAULT_INDEX_FILE: Path = _SAMPLE_ROOT / "capstone2020" / "nepse_index.csv"


def sample_path() -> Path:
    """Return :data:`DEFAULT_DATA_DIR`, the directory of bundled per-symbol NEPSE CSV files.

    The directory is located relative to the installed package file, so it only exists in a
    source checkout of the repository.  Raises ``FileNotFoundError`` with the path it looked
    at when the directory is missing (for example in a wheel install without the data).
    """
    if not DEFAULT_DATA_DIR.is_dir():
        raise FileNotFoundError(
            f"NEPSE sample data not found at {DEFAULT_DATA_DIR}; it ships only with a source "
            "checkout of the repository (see data/nepse/README.md)"
        )
    return DEFAULT_DATA_DIR
