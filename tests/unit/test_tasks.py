"""TaskSet: tasks are held until done, failures are logged at once, shutdown stops them all."""

import asyncio
import contextlib
import logging

from nodemesh.tasks import TaskSet


def test_a_failing_task_is_logged_with_its_name_and_dropped(caplog):
    async def main():
        tasks = TaskSet("owner")

        async def boom():
            raise RuntimeError("bad")

        task = tasks.spawn(boom(), "boom")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
        return len(tasks)

    with caplog.at_level(logging.ERROR, logger="nodemesh.tasks"):
        assert asyncio.run(main()) == 0
    assert "task owner/boom failed: bad" in caplog.text


def test_an_awaited_task_leaves_its_failure_to_the_caller(caplog):
    async def main():
        tasks = TaskSet("owner")

        async def boom():
            raise RuntimeError("mine")

        with contextlib.suppress(RuntimeError):
            await tasks.spawn(boom(), "boom", awaited=True)

    with caplog.at_level(logging.ERROR, logger="nodemesh.tasks"):
        asyncio.run(main())
    assert "mine" not in caplog.text


def test_finish_lets_quick_tasks_end_and_cancels_the_rest():
    async def main():
        tasks = TaskSet("owner")
        quick = tasks.spawn(asyncio.sleep(0.01, result="done"), "quick")
        stuck = tasks.spawn(asyncio.sleep(3600), "stuck")
        await tasks.finish(timeout=0.5)
        await tasks.wait()
        return quick.result(), stuck.cancelled(), len(tasks)

    assert asyncio.run(main()) == ("done", True, 0)
