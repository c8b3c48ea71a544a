"""``python -m nepse_perf``: the same command line as ``nepse-perf``."""

from __future__ import annotations

from nepse_perf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
