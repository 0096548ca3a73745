"""The one way nodemesh code starts background tasks: a TaskSet that owns them.

asyncio keeps only a weak reference to a task, so a fire-and-forget `create_task` can be
collected mid-flight, and its exception is reported (if at all) at garbage collection, far from
the cause. A TaskSet holds every task it started until the task ends, logs a failure the moment
it happens (unless the caller awaits the task and so owns its outcome), and stops them all at
shutdown: `finish(timeout)` lets them end on their own first, `cancel()` + `wait()` stops at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger("nodemesh.tasks")


class TaskSet:
    def __init__(self, owner: str) -> None:
        self._owner = owner  # prefixes task names: "pod/shop/web-1/tunnel-3-up"
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], name: str, *, awaited: bool = False
    ) -> asyncio.Task[Any]:
        """Start `coro`; `awaited`: the caller collects the result, so a failure is its own."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._owner}/{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not awaited:
            task.add_done_callback(_log_failure)
        return task

    def cancel(self) -> None:
        """Cancel every running task (they finish their cleanup; `wait()` for that)."""
        for task in list(self._tasks):
            task.cancel()

    async def wait(self) -> None:
        """Until every task has ended, whatever the outcome."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def finish(self, timeout: float) -> None:
        """Give running tasks `timeout` seconds to end on their own, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        self.cancel()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(set(self._tasks))


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("task %s failed: %s", task.get_name(), error, exc_info=error)
