"""`/debug/flows` through the real AdminServer dispatch: immediate answers, long-poll, errors."""

from __future__ import annotations

import asyncio
import json

import h11

from nodemesh.admin import AdminServer
from nodemesh.flows import FlowRing
from nodemesh.flows_admin import flows_route
from tests.unit.flows.events import event


def get(server: AdminServer, target: str) -> tuple[int, dict]:
    request = h11.Request(method="GET", target=target, headers=[("host", "x")])
    status, body = asyncio.run(server._dispatch(request))
    return status, json.loads(body)


def test_events_after_the_cursor_are_answered_at_once():
    ring = FlowRing(8)
    ring.append(event(flow_id="a"))
    ring.append(event(flow_id="b"))
    status, doc = get(AdminServer({"/debug/flows": flows_route(ring)}), "/debug/flows?since=1")
    assert status == 200 and doc["next"] == 2
    assert [e["flow_id"] for e in doc["events"]] == ["b"] and doc["events"][0]["seq"] == 2


def test_a_long_poll_wakes_on_the_next_append_and_unsubscribes():
    ring = FlowRing(8)
    route = flows_route(ring)

    async def scenario():
        waiting = asyncio.ensure_future(route({"since": ["0"], "wait": ["30"]}))
        await asyncio.sleep(0)  # the route is now subscribed and waiting
        ring.append(event(flow_id="late"))
        return await waiting

    doc = asyncio.run(scenario())
    assert [e["flow_id"] for e in doc["events"]] == ["late"]
    assert ring._subscribers == []


def test_a_long_poll_with_nothing_new_answers_empty_after_the_wait():
    ring = FlowRing(8)
    doc = asyncio.run(flows_route(ring)({"since": ["0"], "wait": ["0.01"]}))
    assert doc == {"events": [], "missed": 0, "next": 0} and ring._subscribers == []


def test_a_bad_query_is_a_400_that_says_what_to_send():
    server = AdminServer({"/debug/flows": flows_route(FlowRing(2))})
    status, doc = get(server, "/debug/flows?limit=0")
    assert status == 400 and "1 to 1000" in doc["error"]


def test_synchronous_routes_still_work():
    status, doc = get(AdminServer({"/healthz": lambda q: {"ok": True}}), "/healthz")
    assert (status, doc) == (200, {"ok": True})
