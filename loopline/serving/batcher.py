"""Micro-batching: concurrent requests share one model call, on one model thread.

The event loop only queues jobs; a consumer hands everything queued (up to `max_batch` rows)
to the model thread as one batch. Requests that arrive while the model is busy form the next
batch, so batching costs nothing at low load and multiplies throughput under concurrency.
`max_wait_ms` > 0 also waits that long for company before a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from loopline.serving.predictor import Job


class Batcher:
    def __init__(self, run: Callable[[list[Job]], None], max_batch: int, max_wait_ms: float,
                 enabled: bool = True, threads: int | None = None) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.enabled = enabled
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model",
                                        initializer=_limit_threads, initargs=(threads,))
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[None]]] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self.batches = 0
        self.jobs = 0

    async def submit(self, job: Job) -> Job:
        loop = asyncio.get_running_loop()
        if not self.enabled:
            await loop.run_in_executor(self._pool, self._run, [job])
            return job
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._consumer = loop.create_task(self._consume())
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put_nowait((job, done))
        await done
        return job

    async def _consume(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            rows = len(first[0].rows)
            deadline = loop.time() + self.max_wait_s
            while rows < self.max_batch:
                if not self._queue.empty():
                    item = self._queue.get_nowait()
                elif self.max_wait_s > 0 and (left := deadline - loop.time()) > 0:
                    try:
                        item = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                else:
                    break
                batch.append(item)
                rows += len(item[0].rows)
            self.batches += 1
            self.jobs += len(batch)
            try:
                await loop.run_in_executor(self._pool, self._run, [job for job, _ in batch])
            except Exception as exc:  # noqa: BLE001 - answered per request, never lost
                for job, _ in batch:
                    job.error = job.error or f"{type(exc).__name__}: {exc}"
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _limit_threads(threads: int | None) -> None:
    """OpenMP/BLAS threads of calls made on the model thread (OpenMP's limit is per thread)."""
    if threads is None:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
