"""Capture events on the real kernel: one ring-buffer record per decision, and none lost silently.

Reuses test_capture's topology (a node netns, two pods with netns + cgroup, named after the test)
and plays the agent the same way. Hooks write their record inside connect() (connect4/6) or the
listener lookup (sk_lookup), so once a client's connect() has returned, its event is in the ring:
the tests read it with `poll_events(0)`, without waiting.
"""

from __future__ import annotations

import pytest

from node_agent import bpf_types as bt
from node_agent import capture as cap
from node_agent.capture_events import Capture, CaptureJoin, boot_offset
from tests.netns.test_capture import agent, finish, serve_one, topo  # noqa: F401 (fixtures)

pytestmark = pytest.mark.netns

# A pod process making `n` connects to ip:port with SO_MARK `mark` (refused ones are fine).
CONNECTS = """
import socket, sys
ip, port, n, mark = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for _ in range(n):
    s = socket.socket()
    s.settimeout(5)
    if mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    try:
        s.connect((ip, port))
    except OSError:
        pass
    s.close()
"""


def of_pod(events: list[bt.CaptureEvent], pod) -> list[bt.CaptureEvent]:
    return [e for e in events if e.pod_id == pod.pod_id]


def test_a_captured_connect_writes_one_event_that_joins_its_accepted_connection(topo, agent):  # noqa: F811
    a, b = topo.a, topo.b
    outbound = a.listen("127.0.0.1", 15001)
    agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
    agent.poll_events(0)

    client = a.client(b.ip, 8080, bind_port=40001)
    conn = serve_one(outbound, b"ok")
    assert finish(client) == "ok"
    (event,) = of_pod(agent.poll_events(0), a)
    assert event.captured and event.reason is bt.Reason.REDIRECTED
    assert (event.direction, event.hook) == (bt.Direction.OUTBOUND, bt.HookCode.CONNECT4)
    assert event.original_dst == (b.ip, 8080) and event.listener == ("127.0.0.1", 15001)
    assert event.src[1] == 40001  # bound before connect(): known to connect4
    original = agent.take_original(conn)
    assert (original.destination, original.pod_id) == ((b.ip, 8080), a.pod_id)
    assert original.socket_cookie == event.socket_cookie != 0
    assert original.client == conn.getpeername()

    client = a.client(b.ip, 8443, family=6)
    serve_one(outbound, b"v6")
    assert finish(client) == "v6"
    (event,) = of_pod(agent.poll_events(0), a)
    assert (event.hook, event.original_dst, event.src[1]) == (bt.HookCode.CONNECT6, (b.ip, 8443), 0)


def test_an_inbound_capture_joins_the_connection_its_listener_accepts(topo, agent):  # noqa: F811
    """sk_lookup's client address is the accepted socket's peer: the key node_agent.pod records
    for a plaintext connection, so each capture is claimed by its own connection."""
    a, b = topo.a, topo.b
    inbound = b.listen("127.0.0.1", 15006)
    agent.attach_pod(b.pod_id, b.cgroup, b.netns, pod_ip=b.ip, inbound_listener=inbound)
    agent.poll_events(0)

    conns = []
    for port in (8080, 8081):
        client = a.client(b.ip, port)
        conns.append(serve_one(inbound, b"in"))
        assert finish(client) == "in"
    try:
        events = of_pod(agent.poll_events(0), b)
        assert [(e.hook, e.reason) for e in events] == [
            (bt.HookCode.SK_LOOKUP, bt.Reason.REDIRECTED)
        ] * 2
        join, offset = CaptureJoin(), boot_offset()
        assert [c for e in events for c in join.add(Capture.of(e, offset), now=0.0)] == []
        for conn in conns:
            claimed = join.claim_inbound(b.pod_id, conn.getpeername()[:2])
            assert claimed is not None, (conn.getpeername(), events)
            assert claimed.original_destination == conn.getsockname()[:2]  # what pod.py sees
        assert len(join) == 0
    finally:
        for conn in conns:
            conn.close()


def test_passed_connections_write_one_event_each_with_the_reason(topo, agent):  # noqa: F811
    a, b = topo.a, topo.b
    inbound, hbone = b.listen("127.0.0.1", 15006), b.listen("0.0.0.0", 15008)
    remote_app, local_app = b.listen("0.0.0.0", 7070), a.listen("127.0.0.1", 8080)
    agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
    agent.attach_pod(b.pod_id, b.cgroup, b.netns, pod_ip=b.ip, inbound_listener=inbound)
    agent.exclude(ip=b.ip, port=7070)  # both ways: b's sk_lookup passes it too
    agent.poll_events(0)

    client = a.client(b.ip, 7070, mark=cap.AGENT_MARK)
    serve_one(remote_app, b"marked")
    assert finish(client) == "marked"
    events = agent.poll_events(0)
    (marked,), (arriving,) = of_pod(events, a), of_pod(events, b)
    assert (marked.reason, marked.captured, marked.listener) == (bt.Reason.AGENT_MARK, False, None)
    assert marked.original_dst == (b.ip, 7070)
    assert (arriving.reason, arriving.direction) == (bt.Reason.EXCLUDED, bt.Direction.INBOUND)
    assert arriving.src[0] == a.ip and arriving.original_dst == (b.ip, 7070)

    client = a.client(b.ip, 7070)
    serve_one(remote_app, b"excluded")
    assert finish(client) == "excluded"
    (excluded,) = of_pod(events := agent.poll_events(0), a)
    assert len(of_pod(events, b)) == 1
    assert (excluded.reason, excluded.direction) == (bt.Reason.EXCLUDED, bt.Direction.OUTBOUND)

    client = a.client("127.0.0.1", 8080)
    serve_one(local_app, b"local")
    assert finish(client) == "local"
    assert of_pod(agent.poll_events(0), a) == []  # loopback: counted, no event

    source = a.connect_from_outside_cgroup(b.ip, 15008).getsockname()
    hbone.accept()
    (to_hbone,) = of_pod(agent.poll_events(0), b)
    assert (to_hbone.reason, to_hbone.direction) == (bt.Reason.HBONE_PORT, bt.Direction.INBOUND)
    assert (to_hbone.src, to_hbone.original_dst) == (source, (b.ip, 15008))

    counts = agent.reason_counts()
    assert (counts[bt.Reason.AGENT_MARK], counts[bt.Reason.EXCLUDED]) == (1, 3)
    assert counts[bt.Reason.LOOPBACK] == counts[bt.Reason.HBONE_PORT] == 1
    assert counts[bt.Reason.REDIRECTED] == 0 and agent.event_drops() == 0


def test_a_full_ring_drops_events_and_counts_them_but_never_the_connections(topo):  # noqa: F811
    a, b = topo.a, topo.b
    program = cap.CaptureProgram(pin_root=topo.pin_root, bpffs_mount=topo.pin_root, event_pages=1)
    try:
        program.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
        connects = 300  # one page holds 73 records of 56 bytes: most must be dropped
        finish(a.run(CONNECTS, b.ip, 7777, connects, cap.AGENT_MARK))  # refused: nobody listens
        read = of_pod(program.poll_events(0), a)
        drops = program.event_drops()
        assert drops > 0 and len(read) + drops == connects, (len(read), drops)
        assert {e.reason for e in read} == {bt.Reason.AGENT_MARK}
        assert program.reason_counts()[bt.Reason.AGENT_MARK] == connects  # counted all the same
    finally:
        program.close()
