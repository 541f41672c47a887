"""Workers: the one place that touches ``QThreadPool`` (see ``desktop.workers.worker``)."""

from desktop.workers.worker import (
    FunctionWorker,
    GeneratorWorker,
    WorkerSignals,
    abort_all,
    active_count,
    start,
    wait_for_all,
)

__all__ = [
    "FunctionWorker",
    "GeneratorWorker",
    "WorkerSignals",
    "abort_all",
    "active_count",
    "start",
    "wait_for_all",
]
