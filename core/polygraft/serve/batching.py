"""Micro-batching: concurrent requests to one model are run together, up to ``max_batch`` examples, waiting at most
``max_wait_ms`` after the first for others to arrive. One worker thread per model runs the batches, so the event
loop keeps accepting requests while a batch computes; ``max_batch=1`` is plain one-at-a-time serving.

Example:
    >>> import asyncio
    >>> from polygraft.serve.batching import MicroBatcher
    >>> class Doubler:
    ...     def predict(self, items): return [2 * item for item in items]
    >>> async def main():
    ...     batcher = MicroBatcher(Doubler(), max_batch=4, max_wait_ms=5)
    ...     try:
    ...         return await asyncio.gather(*(batcher.submit([i], timeout=5) for i in range(3)))
    ...     finally:
    ...         await batcher.close()
    >>> asyncio.run(main())
    [[0], [2], [4]]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Pending:
    items: list[Any]
    future: asyncio.Future[list[Any]]
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects submitted items into batches for ``model.predict(items) -> results`` (same order)."""

    def __init__(self, model: Any, *, max_batch: int = 16, max_wait_ms: float = 5.0) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch}, {max_wait_ms}")
        self.model = model
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polygraft-model")
        self.worker: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None
        self.batches = 0
        self.examples = 0

    async def submit(self, items: Sequence[Any], *, timeout: float) -> list[Any]:
        """Results for ``items`` (one request's examples, kept together in one batch); ``TimeoutError`` after
        ``timeout`` seconds (the request is then dropped from the queue if it has not started)."""
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(list(items), future))
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    async def _gather(self) -> list[_Pending]:
        first, self._carry = (self._carry, None) if self._carry is not None else (await self.queue.get(), None)
        pending, size = [first], len(first.items)
        deadline = time.perf_counter() + self.max_wait
        while size < self.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 and self.queue.empty():
                break
            try:
                following = self.queue.get_nowait() if remaining <= 0 else \
                    await asyncio.wait_for(self.queue.get(), remaining)
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if size + len(following.items) > self.max_batch:
                self._carry = following  # too big to join: it starts the next batch
                break
            pending.append(following)
            size += len(following.items)
        return pending

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            await self._run_batch(batch)

    async def _run_batch(self, pending: list[_Pending]) -> None:
        live = [p for p in pending if not p.future.done()]  # timed-out requests are not computed
        if not live:
            return
        items = [item for p in live for item in p.items]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.model.predict, items)
        except Exception as exc:  # the whole batch failed: every request in it hears why
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self.batches += 1
        self.examples += len(items)
        start = 0
        for p in live:
            if not p.future.done():
                p.future.set_result(results[start:start + len(p.items)])
            start += len(p.items)

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        self.executor.shutdown(wait=False, cancel_futures=True)
