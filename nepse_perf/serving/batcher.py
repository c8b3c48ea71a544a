"""Micro-batching: queue concurrent requests, run them as one model call.

The same idea as Triton's dynamic batcher (``max_queue_delay_microseconds``) and Ray Serve's
``@serve.batch`` (``max_batch_size``, ``batch_wait_timeout_s``): requests that arrive close
together are stacked into one array and predicted by one ONNX Runtime call of at most
``max_batch`` rows, started when that many rows wait or ``max_wait_ms`` after the oldest
waiting request arrived, whichever comes first. The call runs in a worker thread, so the
event loop keeps accepting and parsing requests meanwhile; while one batch runs, the next
one fills up (so even ``max_wait_ms=0`` batches under load).

The queue is bounded in rows (``max_queue``): once that many rows wait, a new request is
refused at once with :class:`Overloaded` (the service answers 503 with ``Retry-After``), so
memory never grows without bound under overload. The bound is checked before a request
joins, not with its rows added, so the service can decide admission before it parses a
body (one request may take the queue past the bound by its own rows). A request may carry a deadline: one still queued
when its deadline passes is dropped with :class:`DeadlinePassed` instead of being predicted,
and so is one whose caller stopped waiting (its future cancelled), so no model time goes to
an answer nobody will read.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from nepse_perf._infra.checks import positive_int

__all__ = ["BatchStats", "DeadlinePassed", "MicroBatcher", "Overloaded"]


class Overloaded(RuntimeError):
    """The batcher's queue is full (or it is stopping): retry later."""


class DeadlinePassed(Overloaded):
    """The request's deadline passed while it waited in the queue: it was not predicted."""


@dataclass
class _Item:
    rows: np.ndarray
    future: asyncio.Future
    enqueued: float
    deadline: float | None = None  # time.monotonic() seconds


@dataclass
class BatchStats:
    """Counters of a batcher: batches run, rows predicted, requests refused, requests
    dropped unpredicted (deadline passed or caller gone)."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    refused: int = 0
    dropped: int = 0


class MicroBatcher:
    """Stack concurrent requests into model calls of at most ``max_batch`` rows.

    ``predict`` maps a 2-D float array (rows x features) to one value per row and must be
    row-wise (row i's result depends on row i only; true of tree ensembles and MLPs), so a
    batched result equals the unbatched one. ``max_wait_ms`` (>= 0) is how long the oldest
    request may wait for company; ``max_queue`` bounds the rows waiting (not counting the
    batch being predicted). A request of more than ``max_batch`` rows runs alone, split into
    calls of ``max_batch`` rows. ``on_batch(rows, seconds)`` is called after each call and
    ``on_queue(rows)`` whenever the queue changes (metrics hooks). Use inside one event loop:
    ``await start()``, ``await submit(rows)``, ``await stop()``.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 8,
        max_wait_ms: float = 0.0,
        max_queue: int = 2048,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self.max_batch = positive_int(max_batch, "max_batch")
        if not (float(max_wait_ms) >= 0):
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms!r}")
        self.max_queue = positive_int(max_queue, "max_queue")
        self.predict = predict
        self.max_wait = float(max_wait_ms) / 1000.0
        self.stats = BatchStats()
        self._on_batch = on_batch or (lambda rows, seconds: None)
        self._on_queue = on_queue or (lambda rows: None)
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch (not counting the batch being predicted)."""
        return self._queued_rows

    async def start(self) -> None:
        """Start the batching task (and its one inference thread) in the running loop."""
        if self._task is not None:
            return
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nepse-infer")
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Refuse new work, finish the queued requests, then stop the task and the thread."""
        self._stopping = True
        if self._task is None:
            return
        if self._wake is not None:
            self._wake.set()
        try:
            await self._task
        finally:
            self._task = None
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def full(self) -> str | None:
        """Why no request can be queued now (None when one of a row can)."""
        if self._task is None or self._stopping:
            return "the service is stopping"
        if self._queued_rows >= self.max_queue:
            return f"queue full ({self._queued_rows} rows waiting, limit {self.max_queue})"
        return None

    async def submit(self, rows: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """Queue ``rows`` (2-D float array) and wait for their predictions (1-D, one per row).

        Raises :class:`Overloaded` at once when ``max_queue`` rows wait already or the
        batcher is stopping, :class:`DeadlinePassed` when ``deadline`` (a
        ``time.monotonic()`` time) passes before the rows' batch starts; re-raises the
        model's exception if the batch failed.
        """
        reason = self.full()
        if reason is not None:
            if self._task is not None and not self._stopping:
                self.stats.refused += 1  # refused for a full queue, not for stopping
            raise Overloaded(reason)
        n = len(rows)
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(rows, future, time.perf_counter(), deadline))
        self._queued_rows += n
        self.stats.requests += 1
        self._on_queue(self._queued_rows)
        self._wake.set()
        return await future

    def _stale(self, item: _Item, now: float) -> bool:
        """Whether ``item`` is dropped unpredicted: its caller left, or its deadline passed
        (its future then gets :class:`DeadlinePassed`)."""
        if item.future.done():
            return True
        if item.deadline is None or now < item.deadline:
            return False
        waited = (time.perf_counter() - item.enqueued) * 1000
        item.future.set_exception(DeadlinePassed(f"deadline passed after {waited:.0f} ms queued"))
        return True

    def _take(self) -> list[_Item]:
        """Pop whole requests up to ``max_batch`` rows (at least one request, unless every
        queued one was stale); stale requests met on the way are dropped."""
        now = time.monotonic()
        batch: list[_Item] = []
        rows = 0
        while self._queue and (not batch or rows + len(self._queue[0].rows) <= self.max_batch):
            item = self._queue.popleft()
            self._queued_rows -= len(item.rows)
            if self._stale(item, now):
                self.stats.dropped += 1
                continue
            batch.append(item)
            rows += len(item.rows)
        self._on_queue(self._queued_rows)
        return batch

    def _predict_chunks(self, stacked: np.ndarray) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        if len(stacked) <= self.max_batch:
            out = np.asarray(self.predict(stacked), dtype=np.float64).reshape(-1)
        else:
            parts = [
                np.asarray(self.predict(stacked[i : i + self.max_batch]), dtype=np.float64)
                for i in range(0, len(stacked), self.max_batch)
            ]
            out = np.concatenate([p.reshape(-1) for p in parts])
        return out, time.perf_counter() - t0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            # wait for company: until max_batch rows wait or the oldest has waited max_wait
            while self._queued_rows < self.max_batch and not self._stopping:
                remaining = self._queue[0].enqueued + self.max_wait - time.perf_counter()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take()
            if not batch:
                continue
            stacked = batch[0].rows if len(batch) == 1 else np.concatenate([b.rows for b in batch])
            try:
                out, seconds = await loop.run_in_executor(
                    self._executor, self._predict_chunks, stacked
                )
            except Exception as exc:  # the model failed: every request of the batch learns why
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.stats.batches += 1
            self.stats.rows += len(stacked)
            self._on_batch(len(stacked), seconds)
            start = 0
            for item in batch:
                stop = start + len(item.rows)
                if not item.future.done():  # a cancelled request (client gone) is skipped
                    item.future.set_result(out[start:stop])
                start = stop
