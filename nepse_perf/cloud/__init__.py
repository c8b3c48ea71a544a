"""Cloud scaling, measured: the resumable spot batch job, checkpoint intervals, costs, serverless.

* :mod:`.batch` the nightly job (chunked, atomic, manifest, resumable, SIGTERM-aware);
* :mod:`.checkpoint` Young/Daly's checkpoint interval and a simulation of interrupted runs;
* :mod:`.costs` the dated instance table, cost per million predictions, right-sizing,
  serverless break-even;
* :mod:`.handler` a Lambda-style ``handler(event, context)``; :mod:`.coldstart` cold-start
  and deployable-size measurements in fresh subprocesses.

``nepse_perf.cloud.handler`` is the handler function itself (re-exported here), so a function
configuration can name ``nepse_perf.cloud.handler``.
"""

from .batch import BatchError, BatchResult, read_output, run_batch, verify_output
from .handler import handler

__all__ = [
    "BatchError",
    "BatchResult",
    "handler",
    "read_output",
    "run_batch",
    "verify_output",
]
