"""Group commit for the real-time path: concurrent callers share one unit of work.

The shape of MLServer's adaptive batcher, without its timer: a caller submits one item and
awaits its own result; items queue while a batch runs, and the next batch takes all that queued
(up to `max_size`) when it starts running, the moment a slot frees. An idle batcher therefore
runs a batch at once (no added latency at one request in flight), and under load batches grow to
what arrives during one batch's run, which is what amortises a transaction's commit and the
thread hop to the database over many callers.

Each caller gets its own result or its own exception: the batch function returns one per item,
in order. If the batch function raises as a whole (a statement no savepoint contained, a lost
connection), every item is run again alone, so a poison item fails by itself and the others of
its batch still succeed. A caller that goes away (its RPC cancelled) does not cancel the batch:
the work it started is committed or not for everyone, and idempotency keys make a retry safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("ccl.batcher")

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs `run(items) -> one result or exception per item` over batches of submitted items;
    at most `max_concurrent` batches run at once (1 suits a single writer such as SQLite)."""

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        name: str,
        max_size: int = 64,
        max_concurrent: int = 1,
    ) -> None:
        if max_size < 1 or max_concurrent < 1:
            raise ValueError("max_size and max_concurrent must be at least 1")
        self._run = run
        self.name = name
        self._max_size = max_size
        self._max_concurrent = max_concurrent
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._starting = False  # a batch is started and has not taken its items yet
        self._tasks: set[asyncio.Task[None]] = set()
        # What happened so far, for tests and metrics: batches run and items through them.
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """Queues `item` for the next batch and returns its result (or raises its error)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start_batches()
        # A cancelled caller cancels only its own future: the batch, a task of its own, goes on
        # for the others, and `_settle` skips the cancelled future.
        return await future

    def _start_batches(self) -> None:
        """Starts a batch if items wait, a slot is free and no started batch has yet to take
        its items: a batch takes what queued by the time it runs, not when it was started."""
        if self._queue and not self._starting and self._running < self._max_concurrent:
            self._starting = True
            self._running += 1
            task = asyncio.create_task(self._run_batch(), name=f"batch:{self.name}")
            self._tasks.add(task)
            # The bookkeeping is the task's done-callback, so it holds even for a task
            # cancelled before it ever ran.
            task.add_done_callback(self._batch_done)

    async def _run_batch(self) -> None:
        self._starting = False
        batch = self._queue[: self._max_size]
        del self._queue[: self._max_size]
        self._start_batches()  # what did not fit, when another batch may run meanwhile
        if batch:
            await self._settle_batch(batch)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running -= 1
        if task.cancelled():
            self._starting = False  # it may never have run to take its items
        self._start_batches()

    async def _settle_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            try:
                results = await self._results([item for item, _ in batch])
            except Exception:
                if len(batch) == 1:
                    raise
                log.exception(
                    "batch failed as a whole; running its items one by one",
                    extra={"batcher": self.name, "size": len(batch)},
                )
                results = [await self._alone(item) for item, _ in batch]
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)
        except BaseException as e:  # handed to every caller of this batch
            for _, future in batch:
                _settle(future, e)
            if not isinstance(e, Exception):
                raise

    async def _results(self, items: list[T]) -> Sequence[R | BaseException]:
        results = await self._run(items)
        if len(results) != len(items):
            raise RuntimeError(f"batch {self.name}: {len(results)} results for {len(items)} items")
        return results

    async def _alone(self, item: T) -> R | BaseException:
        try:
            return (await self._results([item]))[0]
        except Exception as e:
            return e

    async def drain(self) -> None:
        """Waits until nothing is queued or running (shutdown, tests)."""
        while self._tasks or self._queue:
            if not self._tasks:
                self._start_batches()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await asyncio.sleep(0)  # the done-callbacks run


def _settle(future: asyncio.Future[R], result: R | BaseException) -> None:
    if future.done():  # its caller was cancelled and nobody reads it
        return
    if isinstance(result, asyncio.CancelledError):  # the batch's task was (shutdown)
        future.cancel()
    elif isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
