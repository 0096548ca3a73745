"""The waypoint's HTTP/1.1 request path on loopback, driven by curl and raw sockets.

Real backends (threaded HTTP servers), the real session, pipeline, upstream pool and telemetry;
only HBONE is replaced by plain TCP (its own tests cover it). Counts use fixed RNG seeds, so the
statistical checks are repeatable.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from controller.model_policy import AuthorizationPolicy, Operation, Rule, TargetRef
from tests.inprocess.waypoint_rig import VIP, Backend, Rig, curl, curl_many, peers, route, service
from waypoint.resilience.config import traffic_policy_from_spec

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def web(backends, *, routes=(), policies=(), traffic=None, extra=()):
    services = [service("web", backends[:1], vip=VIP), *extra]
    return Rig(services, peers(backends), list(routes), list(policies), traffic or {})


def split_rules(v1_weight: int, v2_weight: int) -> list[dict]:
    backend = {"group": "", "kind": "Service", "namespace": "shop", "port": 80}
    return [
        {
            "matches": [
                {
                    "headers": [{"type": "Exact", "name": "x-canary", "value": "yes"}],
                    "path": {"type": "PathPrefix", "value": "/"},
                }
            ],
            "backendRefs": [{**backend, "name": "web-v2", "weight": 1}],
            "filters": [],
        },
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [
                {**backend, "name": "web-v1", "weight": v1_weight},
                {**backend, "name": "web-v2", "weight": v2_weight},
            ],
            "filters": [],
        },
    ]


def test_weighted_split_and_header_match():
    async def main():
        with Backend("v1") as v1, Backend("v2") as v2:
            extra = [service("web-v1", [v1]), service("web-v2", [v2])]
            rig = web([v1, v2], routes=[route("split", split_rules(90, 10))], extra=extra)
            async with rig:
                results = await curl_many(rig.url + "/", 1000)
                names = [json.loads(body)["backend"] for code, body in results if code == 200]
                assert len(names) == 1000
                assert 840 <= names.count("v1") <= 960, names.count("v1")
                canary = await curl_many(rig.url + "/", 50, "-H", "x-canary: yes")
                assert {json.loads(b)["backend"] for _, b in canary} == {"v2"}
                assert rig.metric("istio_requests_total", response_code="200") == 1050
                assert rig.pool.opened <= 4  # keep-alive upstream connections were reused

    run(main())


def test_retries_turn_half_failures_into_success():
    async def main():
        with Backend("flaky", fail_every=2) as flaky:
            rules = [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {
                            "group": "",
                            "kind": "Service",
                            "name": "web",
                            "namespace": "shop",
                            "port": 80,
                            "weight": 1,
                        }
                    ],
                    "filters": [],
                    "retry": {"attempts": 3, "codes": [503], "backoff": "1ms"},
                }
            ]
            async with web([flaky], routes=[route("retry", rules)]) as rig:
                results = await curl_many(rig.url + "/", 200)
                ok = sum(1 for code, _ in results if code == 200)
                assert ok >= 198, ok
                assert flaky.count > 200  # the failures really happened and were retried

    run(main())


def test_faults_abort_and_delay_by_percentage():
    async def main():
        with Backend("v1") as v1:
            policy = traffic_policy_from_spec(
                {
                    "targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
                    "faults": {"abort": {"percentage": 50, "httpStatus": 503}},
                }
            )
            async with web([v1], traffic={"shop/web": policy}) as rig:
                results = await curl_many(rig.url + "/", 400)
                aborted = sum(1 for code, _ in results if code == 503)
                assert 160 <= aborted <= 240, aborted
                assert rig.metric("istio_requests_total", response_flags="FI") == aborted

    run(main())


def test_route_timeout_answers_504():
    async def main():
        with Backend("slow", delay=2.0) as slow:
            rules = [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {
                            "group": "",
                            "kind": "Service",
                            "name": "web",
                            "namespace": "shop",
                            "port": 80,
                            "weight": 1,
                        }
                    ],
                    "filters": [],
                    "timeouts": {"request": "500ms"},
                }
            ]
            async with web([slow], routes=[route("timeout", rules)]) as rig:
                loop = asyncio.get_running_loop()
                started = loop.time()
                _, out, _ = await curl("-o", "/dev/null", "-w", "%{http_code}", rig.url + "/")
                elapsed = loop.time() - started
                assert out == "504"
                assert 0.4 <= elapsed < 1.9, elapsed  # bounded below by the timeout itself

    run(main())


def _policy(name: str, action: str, operation: Operation) -> AuthorizationPolicy:
    return AuthorizationPolicy(
        name=name,
        namespace="shop",
        selector=None,
        target_refs=(TargetRef("", "Service", "web", "shop"),),
        action=action,
        rules=(Rule(sources=(), operations=(operation,), conditions=()),),
        is_root=False,
        needs_l7=True,
    )


def test_l7_authorization_allows_get_public_and_refuses_post_admin():
    async def main():
        allow = _policy("allow-public", "ALLOW", Operation(methods=("GET",), paths=("/public*",)))
        deny = _policy("deny-debug", "DENY", Operation(paths=("/public/debug",)))
        with Backend("v1") as v1:
            async with web([v1], policies=[allow, deny]) as rig:
                _, ok, _ = await curl("-w", "%{http_code}", "-o", "/dev/null", rig.url + "/public")
                _, no, _ = await curl(
                    "-X", "POST", "-w", "%{http_code}", "-o", "/dev/null", rig.url + "/admin"
                )
                _, body, _ = await curl(rig.url + "/public/../public/debug")
                assert (ok, no) == ("200", "403")
                assert "deny-debug" in body
                assert rig.metric("istio_requests_total", response_code="403") == 2

    run(main())


SMUGGLING = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
]


@pytest.mark.parametrize("raw", SMUGGLING, ids=lambda r: r[:40].decode(errors="replace"))
def test_smuggling_shapes_get_400_and_close_while_others_work(raw):
    async def main():
        with Backend("v1") as v1:
            async with web([v1]) as rig:
                good_reader, good_writer = await asyncio.open_connection("127.0.0.1", rig.port)
                reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
                writer.write(raw)
                answer = await asyncio.wait_for(reader.read(), 10)  # read() to EOF: closed
                assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
                good_writer.write(b"GET /ok HTTP/1.1\r\nHost: web\r\n\r\n")
                status = await asyncio.wait_for(good_reader.readline(), 10)
                assert status.startswith(b"HTTP/1.1 200")
                good_writer.close()

    run(main())


def test_traceparent_continued_or_started_and_span_recorded():
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    async def main():
        with Backend("v1") as v1:
            async with web([v1]) as rig:
                _, given, _ = await curl("-H", f"traceparent: {parent}", rig.url + "/")
                _, fresh, _ = await curl(rig.url + "/")
                seen = json.loads(given)["headers"]["traceparent"].split("-")
                assert seen[1] == "4bf92f3577b34da6a3ce929d0e0e4736"  # same trace
                assert seen[2] != "00f067aa0ba902b7"  # the waypoint's own span is the parent
                started = json.loads(fresh)["headers"]
                assert len(started["traceparent"].split("-")[1]) == 32
                assert started["x-request-id"]
                spans = rig.spans.trace("4bf92f3577b34da6a3ce929d0e0e4736")
                assert [s.parent_span_id for s in spans] == ["00f067aa0ba902b7"]

    run(main())
