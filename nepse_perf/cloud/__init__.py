"""Cloud scaling, the deployable half: the resumable spot batch job and a serverless handler.

* :mod:`.batch` the nightly job (chunked, atomic, manifest, resumable, SIGTERM-aware);
* :mod:`.handler` a Lambda-style ``handler(event, context)``.

The lessons around them (Young/Daly's checkpoint interval and its simulation, the dated cost
tables, cold-start and deployable-size measurements) are in :mod:`nepse_perf.lessons`
(``checkpoint``, ``costs``, ``coldstart``). ``nepse_perf.cloud.handler`` is the handler
function itself (re-exported here), so a function configuration can name it.
"""

from nepse_perf.cloud.batch import BatchError, BatchResult, read_output, run_batch, verify_output
from nepse_perf.cloud.handler import handler

__all__ = [
    "BatchError",
    "BatchResult",
    "handler",
    "read_output",
    "run_batch",
    "verify_output",
]
