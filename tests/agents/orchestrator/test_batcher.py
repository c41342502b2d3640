"""The group-commit batcher: a batch of one when idle, shared batches under load, one result
per caller, a poison item failing alone, cancelled callers not cancelling the batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from server.agents.orchestrator.batcher import Batcher


class Recorder:
    """A batch function that records its batches and can be held open or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.poison: set[int] = set()

    async def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.poison & set(items) and len(items) > 1:
            raise RuntimeError("the whole batch failed")
        return [ValueError(f"bad {i}") if i < 0 or i in self.poison else i * 10 for i in items]


async def test_an_idle_batcher_runs_a_batch_of_one_at_once() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, name="t")
    assert await batcher.submit(1) == 10
    assert await batcher.submit(2) == 20
    assert run.batches == [[1], [2]]


async def test_callers_arriving_during_a_batch_share_the_next_one() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run, name="t", max_size=3)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)  # the first batch starts and waits on the gate
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    run.gate.set()
    assert await first == 0
    assert [await t for t in rest] == [10, 20, 30, 40, 50]
    assert run.batches == [[0], [1, 2, 3], [4, 5]], "capped at max_size, in arrival order"
    assert (batcher.batches, batcher.items) == (3, 6)


async def test_each_caller_gets_its_own_error() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run, name="t")
    hold = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)
    good, bad = asyncio.create_task(batcher.submit(1)), asyncio.create_task(batcher.submit(-1))
    await asyncio.sleep(0)
    run.gate.set()
    await hold
    assert await good == 10
    with pytest.raises(ValueError, match="bad -1"):
        await bad
    assert run.batches[1] == [1, -1], "they shared a batch"


async def test_a_batch_that_fails_as_a_whole_runs_its_items_alone() -> None:
    run = Recorder()
    run.gate.clear()
    run.poison = {7}
    batcher: Batcher[int, int] = Batcher(run, name="t")
    hold = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in (6, 7, 8)]
    await asyncio.sleep(0)
    run.gate.set()
    await hold
    assert await tasks[0] == 60
    with pytest.raises(ValueError, match="bad 7"):
        await tasks[1]
    assert await tasks[2] == 80
    assert run.batches[1:] == [[6, 7, 8], [6], [7], [8]]


async def test_a_cancelled_caller_does_not_cancel_its_batch() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run, name="t")
    hold = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)
    leaving, staying = (
        asyncio.create_task(batcher.submit(1)),
        asyncio.create_task(batcher.submit(2)),
    )
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    run.gate.set()
    await hold
    assert await staying == 20
    assert leaving.cancelled()
    assert run.batches[1] == [1, 2], "the leaving caller's item was still processed"
    await batcher.drain()


async def test_a_wrong_number_of_results_is_an_error_not_a_silent_mismatch() -> None:
    async def short(items: list[int]) -> Sequence[int | BaseException]:
        return items[:-1]

    batcher: Batcher[int, int] = Batcher(short, name="t")
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await batcher.submit(1)


async def test_several_batches_may_run_at_once_when_allowed() -> None:
    run = Recorder()
    run.gate.clear()
    batcher: Batcher[int, int] = Batcher(run, name="t", max_concurrent=2)
    tasks = []
    for i in range(3):
        tasks.append(asyncio.create_task(batcher.submit(i)))
        for _ in range(3):
            await asyncio.sleep(0)  # the submit, then a batch (if a slot is free) takes it
    assert run.batches == [[0], [1]], "two batches running, the third item waits"
    run.gate.set()
    assert [await t for t in tasks] == [0, 10, 20]
    assert run.batches[2] == [2]


async def test_a_batch_takes_what_queued_before_it_ran() -> None:
    """Callers that arrive in the same turn of the event loop share one batch, even the first
    (the batch takes its items when it runs, not when it was started)."""
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, name="t", max_concurrent=4)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert run.batches == [[0, 1, 2, 3, 4]]
