"""The pipeline on distributed engines, one module per engine.

- :mod:`nepse_perf.engines.dask`: Dask DataFrame partitions of whole symbols on a
  ``LocalCluster`` or ``$DASK_SCHEDULER_ADDRESS`` (notebook 05). Its names are re-exported
  here, so ``from nepse_perf.engines import run_pipeline`` keeps working.
- :mod:`nepse_perf.engines.ray`: Ray tasks over batches of symbols reading the panel
  zero-copy from the object store (local ``ray.init`` or ``$RAY_ADDRESS``; notebook 05b).
- :mod:`nepse_perf.engines.spark`: Spark SQL windows and ``applyInPandas`` per symbol
  (``local[2]`` or ``$SPARK_MASTER``; notebook 05b).

Ray and Spark are imported only when their module is: importing this package costs Dask only.
"""

from __future__ import annotations

from nepse_perf.engines import dask as _dask
from nepse_perf.engines.dask import *  # noqa: F403 - the Dask module's public names, listed in its __all__

__all__ = list(_dask.__all__)
