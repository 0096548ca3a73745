"""`/debug/flows` on a component's admin endpoint: the I/O shell around a FlowRing.

Theory of operation: a long-poll. The route parses the query (`nodemesh.flows.FlowQuery`), and
answers at once when the ring holds events after `since`; otherwise it subscribes to the ring,
waits until an append wakes it or `wait` seconds pass, and answers with whatever is there (an
empty page, with the cursor unchanged, after a timeout). The subscription is always cancelled,
so a reader that goes away leaves nothing behind. Agents and waypoints serve the same route.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from nodemesh.admin import RouteStatus
from nodemesh.flows.query import FlowQuery, FlowQueryError
from nodemesh.flows.ring import FlowRing, Page


def flows_route(ring: FlowRing) -> Callable[[dict[str, list[str]]], Awaitable[dict]]:
    """An async admin route serving `ring` (see nodemesh.admin: async routes are awaited)."""

    async def route(query: dict[str, list[str]]) -> dict:
        try:
            q = FlowQuery.parse(query)
        except FlowQueryError as exc:
            raise RouteStatus(400, {"error": str(exc)}) from None
        page = await wait_for_events(ring, q)
        return page.to_dict()

    return route


async def wait_for_events(ring: FlowRing, q: FlowQuery) -> Page:
    """`ring.since(q.since, q.limit)`, waiting up to `q.wait` seconds for it to be non-empty."""
    page = ring.since(q.since, q.limit)
    if page.events or page.missed or q.wait <= 0:
        return page
    woken = asyncio.Event()
    subscription = ring.subscribe(lambda seq: woken.set())
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), q.wait)
    finally:
        subscription.cancel()
    return ring.since(q.since, q.limit)
