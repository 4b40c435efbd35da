"""Micro-batching: concurrent requests share one forward pass.

A request coroutine calls :meth:`MicroBatcher.submit` with one item and awaits its result. A
single worker task takes the first waiting item, keeps collecting until ``max_batch`` items
are in hand or ``max_wait_ms`` has passed since the first arrived, and hands the whole batch to
``process`` in a worker thread (one at a time: the model never runs twice at once). With
``max_batch=1`` every request gets its own forward pass, which is what serving without
batching means.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from rlagent.serving.errors import ServingConfigError

__all__ = ["MicroBatcher"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Collects concurrent items into batches and runs ``process`` on each batch.

    Args:
        process: Called in a worker thread with a list of items; returns one result per item,
            in order. If it raises, every item of that batch gets the exception.
        max_batch: Most items per batch (1: no batching).
        max_wait_ms: Longest a first item waits for company before its batch runs.
        on_batch: Optional callback with ``(batch_size, seconds)`` after each batch (metrics).

    Raises:
        ServingConfigError: If ``max_batch < 1`` or ``max_wait_ms < 0``.
    """

    def __init__(
        self,
        process: Callable[[list[Item]], Sequence[Result]],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if int(max_batch) != max_batch or max_batch < 1:
            raise ServingConfigError(
                f"max_batch={max_batch!r} must be an int >= 1 (1 serves one request at a time)."
            )
        if not max_wait_ms >= 0:
            raise ServingConfigError(
                f"max_wait_ms={max_wait_ms!r} must be >= 0 (milliseconds a request waits for "
                "others to share its forward pass)."
            )
        self.process = process
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlagent-batch")

    async def start(self) -> None:
        """Start the worker task on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker; items still waiting get a ``RuntimeError``."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result (raises what ``process`` raised)."""
        if self._task is None:
            await self.start()
        assert self._queue is not None
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    while len(batch) < self.max_batch and not queue.empty():
                        batch.append(queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            items = [item for item, _ in batch]
            start = time.perf_counter()
            try:
                results: Any = await loop.run_in_executor(self._executor, self.process, items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"the batch function returned {len(results)} results for {len(items)} items"
                    )
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                if self.on_batch is not None:
                    self.on_batch(len(items), time.perf_counter() - start)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
