"""The waypoint benchmark's parts: the standalone waypoint serving for real, and the pure pieces.

The smoke tests run `python -m perf.waypoint_standalone` as a process in front of a Python
backend on loopback (and nginx, when installed) and push a few requests through; nothing
asserts on timing. The rest are unit-sized checks of the benchmark's own parsers and arithmetic
(HTTP/1.1 framing over every split of the input, the HTTP/2 client against an in-memory h2
server, /proc and h2load parsing, the nginx config, the report), kept here beside the smoke
tests so the benchmark's tests live in one file.
"""

from __future__ import annotations

import http.client
import itertools
import json
import shutil
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perf import h2load, waypoint_report
from perf.bench_procs import BenchError, free_ports
from perf.h1_wire import BenchProtocolError, Completed, Http1Client
from perf.h2_wire import Http2Client
from perf.http_openloop import LatencyResult, OpenLoop, percentile, summarize
from perf.nginx_server import Nginx, backend_servers, proxy_servers, render_config
from perf.proc_meter import ProcessMeter, Usage, parse_rss_kb, parse_stat, tree_pids
from perf.waypoint_bench import Row, Target, WaypointProcess
from perf.waypoint_standalone import CLIENT_ID, VIP, bench_state, parse_address
from tests.inprocess.waypoint_rig import Backend

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")


# -- the standalone waypoint, for real -------------------------------------------------------


def test_standalone_waypoint_serves_a_request_and_stops(tmp_path: Path):
    with Backend("solo") as backend, WaypointProcess(tmp_path, backend.port) as waypoint:
        conn = http.client.HTTPConnection("127.0.0.1", waypoint.port, timeout=10)
        conn.request("GET", "/hello?x=1")
        response = conn.getresponse()
        seen = json.loads(response.read())
        conn.close()
        result = OpenLoop("127.0.0.1", waypoint.port, http2=False, connections=2).run(50, 0.2)
    assert response.status == 200
    assert seen["backend"] == "solo" and seen["path"] == "/hello?x=1"
    # The waypoint, not a shortcut, answered: it stamped the client identity it was told about.
    assert seen["headers"]["x-forwarded-client-cert"] == f"URI={CLIENT_ID}"
    assert (result.n, result.errors) == (10, 0)
    assert waypoint.proc is not None and waypoint.proc.poll() is not None  # stopped on exit


def test_standalone_waypoint_reports_failure_with_its_stderr(tmp_path: Path):
    waypoint = WaypointProcess(tmp_path, backend_port=1)
    waypoint.argv[waypoint.argv.index("--listen") + 1] = "not-an-address"
    with pytest.raises(BenchError, match="expected HOST:PORT"):
        waypoint.__enter__()
    assert waypoint.proc is not None and waypoint.proc.poll() is not None


@needs_nginx
def test_nginx_pair_serves_both_protocols_and_leaves_only_its_workdir(tmp_path: Path):
    b1, b2, p1, p2 = free_ports(4)
    with (
        Nginx("backend", tmp_path / "backend", backend_servers(b1, b2), [b1, b2]) as backend,
        Nginx("proxy", tmp_path / "proxy", proxy_servers(p1, p2, b1), [p1, p2]),
    ):
        results = [
            OpenLoop("127.0.0.1", port, http2=h2, connections=2).run(100, 0.1)
            for port, h2 in ((b1, False), (b2, True), (p1, False), (p2, True))
        ]
    assert [(r.n, r.errors) for r in results] == [(10, 0)] * 4
    assert backend.proc is not None and backend.proc.poll() is not None
    assert not list(tmp_path.rglob("nginx.pid"))  # nginx removed its pid file on the way out


# -- HTTP/1.1 framing --------------------------------------------------------------------------

RESPONSES = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", 201),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n",
        200,
    ),
    (b"HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n", 304),
    (b"HTTP/1.1 503 Busy\r\ncontent-length: 2\r\n\r\nno", 503),
]
WIRE = b"".join(raw for raw, _ in RESPONSES)
EXPECTED = [Completed(i, status) for i, (_, status) in enumerate(RESPONSES)]


def _h1_client_with_requests() -> Http1Client[int]:
    client: Http1Client[int] = Http1Client("127.0.0.1:80")
    for i in range(len(RESPONSES)):
        client.request(i)
    return client


def test_h1_requests_are_fixed_gets_queued_until_sent():
    client = _h1_client_with_requests()
    sent = client.data_to_send()
    assert sent.count(b"GET / HTTP/1.1\r\nhost: 127.0.0.1:80\r\n") == len(RESPONSES)
    assert client.data_to_send() == b"" and client.outstanding == len(RESPONSES)


def test_h1_every_prefix_completes_only_whole_responses():
    boundaries = {sum(len(r) for r, _ in RESPONSES[: i + 1]) for i in range(len(RESPONSES))}
    for cut in range(len(WIRE) + 1):
        client = _h1_client_with_requests()
        done = client.receive_data(WIRE[:cut])
        # A response completes exactly when its last byte (of body, or of head) has arrived.
        assert done == EXPECTED[: sum(1 for b in boundaries if b <= cut)]
        assert client.receive_data(WIRE[cut:]) == EXPECTED[len(done) :]


@given(st.lists(st.integers(min_value=0, max_value=len(WIRE)), max_size=12))
def test_h1_any_split_gives_the_same_responses(cuts: list[int]):
    client = _h1_client_with_requests()
    points = [0, *sorted(cuts), len(WIRE)]
    done = []
    for a, b in itertools.pairwise(points):
        done += client.receive_data(WIRE[a:b])
    assert done == EXPECTED and client.outstanding == 0


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", "neither Content-Length nor chunked"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.1 status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n", "without a colon"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    ],
)
def test_h1_garbage_is_refused_not_counted(wire: bytes, message: str):
    client = _h1_client_with_requests()
    with pytest.raises(BenchProtocolError, match=message):
        client.receive_data(wire)


def test_h1_a_response_for_no_request_is_refused():
    client: Http1Client[int] = Http1Client("h")
    with pytest.raises(BenchProtocolError, match="for no request"):
        client.receive_data(b"HTTP/1.1 204 No Content\r\n\r\n")


# -- HTTP/2 client against an in-memory h2 server --------------------------------------------


def _h2_server() -> h2.connection.H2Connection:
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    server.initiate_connection()
    return server


def _exchange(client: Http2Client, server: h2.connection.H2Connection) -> list[Completed]:
    """Shuttle bytes both ways until quiet; the server answers each request as told by path."""
    done: list[Completed] = []
    for _ in range(10):
        for event in server.receive_data(client.data_to_send()):
            if isinstance(event, h2.events.RequestReceived):
                _answer(server, event.stream_id)
        out = server.data_to_send()
        if not out:
            break
        done += client.receive_data(out)
    return done


def _answer(server: h2.connection.H2Connection, sid: int) -> None:
    if sid == 3:  # the second request is reset instead of answered
        server.reset_stream(sid)
        return
    status = b"200" if sid != 5 else b"503"
    server.send_headers(sid, [(b":status", status), (b"content-length", b"2")])
    server.send_data(sid, b"ok", end_stream=True)


def test_h2_client_completes_by_stream_with_status_and_resets_as_zero():
    client: Http2Client[str] = Http2Client("127.0.0.1:80")
    server = _h2_server()
    for tag in ("a", "b", "c"):
        client.request(tag)
    done = _exchange(client, server)
    assert sorted(done, key=lambda c: c.tag) == [
        Completed("a", 200),
        Completed("b", 0),
        Completed("c", 503),
    ]
    assert client.outstanding == 0


def test_h2_requests_past_the_stream_limit_wait_then_go():
    client: Http2Client[int] = Http2Client("h")
    server = _h2_server()
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    _exchange(client, server)  # settle SETTINGS both ways
    for tag in range(3):
        client.request(tag)
    assert client.conn.open_outbound_streams == 1 and client.outstanding == 3
    done = []
    for _ in range(5):
        done += _exchange(client, server)
    # Stream 3 is reset by the test server (tag 1); the others are answered 200.
    assert sorted(done, key=lambda c: c.tag) == [
        Completed(0, 200),
        Completed(1, 0),
        Completed(2, 503),
    ]


def test_h2_goaway_is_a_typed_error():
    client: Http2Client[int] = Http2Client("h")
    server = _h2_server()
    _exchange(client, server)
    client.request(1)
    server.receive_data(client.data_to_send())
    server.close_connection()
    with pytest.raises(BenchProtocolError, match="GOAWAY"):
        client.receive_data(server.data_to_send())


# -- open-loop arithmetic, /proc, h2load, nginx config, report --------------------------------


def test_percentiles_are_nearest_rank_over_sorted_samples():
    ordered = [float(i) for i in range(1, 101)]
    assert [percentile(ordered, p) for p in (50, 90, 99)] == [51.0, 91.0, 100.0]
    assert percentile([], 50) is None
    result = summarize([3.0, 1.0, 2.0], errors=1, elapsed=2.0, rate=2.0)
    assert (result.n, result.errors, result.p50, result.max, result.achieved) == (
        3,
        1,
        2.0,
        3.0,
        1.5,
    )


def test_proc_stat_is_read_after_the_command_name_whatever_it_holds():
    line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 9 1 2\n"
    assert parse_stat(line) == (250, 75)
    with pytest.raises(Exception, match="unexpected"):
        parse_stat("42 (short) S 1")
    assert parse_rss_kb("Name:\tx\nVmRSS:\t  2048 kB\n") == 2048
    assert parse_rss_kb("Name:\tkthread\n") == 0


def test_process_meter_sums_a_tree_over_the_measured_call():
    ticks = {"1": [10, 5], "2": [20, 0]}
    files = {
        "/proc/1/task/1/children": "2 ",
        "/proc/2/task/2/children": "",
        "/proc/1/status": "VmRSS: 1024 kB\n",
        "/proc/2/status": "VmRSS: 3072 kB\n",
    }

    def read(path: str) -> str:
        if path.endswith("/stat"):
            u, s = ticks[path.split("/")[2]]
            return f"1 (x) S {' 0' * 10} {u} {s} 0 0"
        return files[path]

    now = iter([0.0, 2.0])
    meter = ProcessMeter(tree_pids(1, read), read, clock=lambda: next(now), tick=100)

    def work() -> str:
        ticks["1"] = [110, 55]  # +1.0 s user, +0.5 s kernel
        ticks["2"] = [70, 0]  # +0.5 s user
        return "done"

    assert meter.pids == [1, 2] and meter.measure(work) == "done"
    assert meter.usage == Usage(user=1.5, system=0.5, wall=2.0)
    assert meter.usage.cores == 1.0 and meter.rss_mb() == 4.0


H2LOAD_OUTPUT = """
finished in 3.00s, 12345.67 req/s, 1.50MB/s
requests: 37037 total, 37037 started, 37037 done, 37030 succeeded, 7 failed, 2 errored, 0 timeout
status codes: 37000 2xx, 0 3xx, 30 4xx, 0 5xx
"""


def test_h2load_summary_is_parsed_and_absent_summary_is_an_error():
    assert h2load.parse_h2load(H2LOAD_OUTPUT) == h2load.Throughput(
        req_s=12345.67, done=37037, ok=37000, failed=37
    )
    with pytest.raises(BenchError, match="no summary"):
        h2load.parse_h2load("-D: value error 3.0\n")
    argv = h2load.h2load_argv("http://127.0.0.1:1/", http2=False)
    assert "--h1" in argv and argv[-1] == "http://127.0.0.1:1/"


def test_nginx_config_writes_only_inside_its_workdir(tmp_path: Path):
    text = render_config(tmp_path, proxy_servers(1001, 1002, 2001))
    for directive in ("pid", "lock_file", "error_log", "client_body_temp_path", "proxy_temp_path"):
        line = next(x for x in text.splitlines() if x.strip().startswith(directive + " "))
        assert line.split()[1].startswith(str(tmp_path)), line
    assert "listen 127.0.0.1:1002 http2;" in text and "server 127.0.0.1:2001; keepalive" in text
    assert "daemon off;" in text


def _row(path: str, proto: str, p: tuple[float, float, float], **kw) -> Row:
    latency = LatencyResult(1000, kw.pop("achieved", 1000.0), 3000, 0, *p, max=p[2])
    return Row(Target(proto, path, 1), latency=latency, **kw)


def test_report_added_latency_and_cost_per_thousand():
    direct = _row("direct", "HTTP/1.1", (100, 150, 300))
    proxied = _row(
        "waypoint",
        "HTTP/1.1",
        (400, 650, 1500),
        usage=Usage(user=1.2, system=0.3, wall=3.0),
        rss_mb=50.0,
        achieved=500.0,
    )
    assert waypoint_report.added(proxied, direct) == {"p50": 300, "p90": 500, "p99": 1200}
    cost = waypoint_report.cost(proxied)
    assert cost is not None
    assert (cost.cores, cost.cores_per_k, cost.us_per_request, cost.mb_per_k) == (
        0.5,
        1.0,
        500.0,
        50.0,
    )
    lines = waypoint_report.latency_lines([direct, proxied], "HTTP/1.1")
    assert "saturated" in lines[2] and "saturated" not in lines[1]
    assert "MISSED" in waypoint_report.added_lines([direct, proxied])[1]


def test_unavailable_path_is_reported_not_measured():
    row = Row(Target("HTTP/2", "waypoint", 0, unavailable="waypoint session not available yet"))
    line = waypoint_report.latency_lines([row], "HTTP/2")[1]
    assert "HTTP/2: waypoint session not available yet" in line
    assert waypoint_report.cost(row) is None


def test_standalone_state_sends_the_vip_to_the_backend():
    state = bench_state(("127.0.0.1", 8081))
    service = state.service_by_vip[VIP]
    assert service.endpoints[0].address == "127.0.0.1"
    assert service.endpoints[0].ports == ((80, 8081),)
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    with pytest.raises(Exception, match="expected HOST:PORT"):
        parse_address("8080")
