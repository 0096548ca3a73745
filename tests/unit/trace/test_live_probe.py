import itertools

import pytest

from nodemesh.trace.live_probe import (
    LOCAL_PORTS,
    Marks,
    ProbeOutputError,
    new_marks,
    probe_argv,
    read_result,
)
from nodemesh.trace.probe import HttpProbe

MARKS = Marks(23456, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def counting(n: int) -> bytes:
    return bytes(itertools.islice(itertools.cycle(range(1, 256)), n))


def test_marks_come_from_the_injected_randomness():
    marks = new_marks(counting)
    assert LOCAL_PORTS[0] <= marks.local_port <= LOCAL_PORTS[1]
    assert marks.traceparent == f"00-{counting(16).hex()}-{counting(8).hex()}-01"


def test_all_zero_ids_are_never_sent():
    marks = new_marks(lambda n: bytes(n), local_port=20001)
    assert set(marks.trace_id) != {"0"} and set(marks.span_id) != {"0"}


def test_http_probe_carries_the_marks_and_headers():
    http = HttpProbe("POST", "/admin", (("x-evil", "yes"),))
    argv = probe_argv("10.96.0.10", 80, http, MARKS, 5)
    assert argv[0] == "curl" and argv[-1] == "http://10.96.0.10:80/admin"
    assert argv[argv.index("--local-port") + 1] == "23456"
    assert argv[argv.index("-X") + 1] == "POST"
    assert f"traceparent: {MARKS.traceparent}" in argv and "x-evil: yes" in argv


def test_l4_probe_binds_the_local_port():
    argv = probe_argv("fd00::1", 8080, None, MARKS, 2)
    assert argv[:2] == ["python3", "-c"] and argv[3:] == ["fd00::1", "8080", "23456", "2", "0.5"]


@pytest.mark.parametrize(
    ("http", "code", "out", "ok", "status", "summary"),
    [
        (True, 0, "200 0.012", True, 200, "HTTP 200 in 12.0 ms"),
        (True, 0, "403 0.002", False, 403, "HTTP 403 in 2.0 ms"),
        (True, 56, "000 0.001", False, None, "no HTTP response (reset) after 1.0 ms"),
        (False, 0, "ok 1.5", True, None, "connected after 1.5 ms"),
        (False, 0, "reset 0.7", False, None, "connection reset after 0.7 ms"),
    ],
)
def test_results(http, code, out, ok, status, summary):
    result = read_result(http, code, out)
    assert (result.ok, result.status, result.summary) == (ok, status, summary)


@pytest.mark.parametrize(("http", "out"), [(True, ""), (False, "maybe 1.0"), (True, "x")])
def test_unreadable_output_is_a_typed_error(http, out):
    with pytest.raises(ProbeOutputError):
        read_result(http, 127, out, "curl: command not found")
