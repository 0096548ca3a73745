"""Which asyncio event loop the data-plane processes run on: uvloop, unless told otherwise.

uvloop (libuv, with its TLS transport in Cython) takes a large share of the per-message cost of
a Python relay off the interpreter: each captured 64-byte request crosses four loop wake-ups in
the agents, and the stock loop's pure-Python selector and SSL transport dominate that path.
`NODEMESH_EVENT_LOOP=asyncio` selects the stock loop, for debugging or to compare in `make bench`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

ENV = "NODEMESH_EVENT_LOOP"


def event_loop_factory(
    env: dict[str, str] | None = None,
) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop constructor for `asyncio.Runner(loop_factory=...)`."""
    choice = (env if env is not None else os.environ).get(ENV, "uvloop")
    if choice == "asyncio":
        return asyncio.new_event_loop
    if choice != "uvloop":
        raise ValueError(f"{ENV}={choice!r}: expected 'uvloop' or 'asyncio'")
    import uvloop  # a declared dependency; imported late so the stock loop needs nothing

    return uvloop.new_event_loop
