"""`Lease`: a counted slot (a connection, a request, a retry) that gives itself back exactly once.

Admission controls count what is in flight; a count that leaks on an error path slowly turns a
circuit breaker into a wall. So every grant is an object whose release is idempotent and which is
also a context manager: `with breaker.try_request() as lease:` releases on every exit path, and a
connection that outlives one request holds its lease and releases it when it closes.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType


class Lease:
    """One granted slot; `release()` returns it (later calls do nothing)."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    @property
    def held(self) -> bool:
        return self._release is not None

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
