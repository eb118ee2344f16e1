"""Micro-batching: concurrent requests are gathered and run as one batch in the compute pool.

Encoding 16 queries at once costs little more than encoding one (one LSTM pass over a padded batch,
one FAISS matrix product), so under load, answering queries together raises throughput and cuts the
queueing part of latency. A worker takes whatever is queued when it becomes free — queries that
arrived while the previous batch ran — and optionally waits up to ``max_wait_s`` for more; at low
load a lone query therefore runs at once, and under load batches form by themselves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# A batch function returns one result or one exception per item, in order, so that one bad item
# (or one backend that fails) fails only its own requests.
BatchFn = Callable[[Sequence[T]], Sequence["R | BaseException"]]


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        fn: BatchFn[T, R],
        executor: concurrent.futures.Executor,
        max_batch: int = 64,
        max_wait_s: float = 0.0,
        workers: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.fn = fn
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.workers = workers
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = 0  # batches in the executor now

    def idle(self) -> bool:
        """Nothing queued and nothing running: a request now would run alone."""
        return self._running == 0 and (self._queue is None or self._queue.empty())

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._worker(), name=f"micro-batcher-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._queue is not None:  # nobody will run what is still queued
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(RuntimeError("service is shutting down"))

    async def submit(self, item: T) -> R:
        if self._queue is None or not self._tasks:
            raise RuntimeError("micro-batcher is not running")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        return await fut

    def _drain(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        assert self._queue is not None
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _gather(self) -> list[tuple[T, asyncio.Future[R]]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        self._drain(batch)
        if self.max_wait_s > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
                self._drain(batch)
        # A client that disconnected cancelled its future: do not compute for it.
        return [(item, fut) for item, fut in batch if not fut.done()]

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            items = [item for item, _ in batch]
            self._running += 1
            try:
                results = await loop.run_in_executor(self.executor, self.fn, items)
            except asyncio.CancelledError:
                for _, fut in batch:
                    fut.cancel()
                raise
            except BaseException as e:  # the batch function itself broke: fail its requests, keep serving
                results = [e] * len(batch)
            finally:
                self._running -= 1
            for (_, fut), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
