"""`meshctl dashboard --watch`: the pure frame (rows in, text out) and the redraw loop.

Frames are rendered from rows at chosen widths; the loop is driven with a recording writer and
sleeper; the command runs through CliRunner against a fake Prometheus whose second refresh fails,
which must show in that frame while the view carries on.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from nodemesh.cli import dashboard_cmd
from nodemesh.cli.main import cli
from nodemesh.cli.top_view import COLUMNS, Frame, columns_for, render, sort_rows
from nodemesh.local import golden_signals, prometheus
from nodemesh.local.golden_signals import ServiceSignals

NOW = 1_700_000_000.0
WEB = "web.shop.svc.cluster.local"
DB = "db.shop.svc.cluster.local"
CART = "cart-with-a-rather-long-name.checkout-and-payments.svc.cluster.local"


def signals(service, rps=0.0, tcp=0.0, **kw) -> ServiceSignals:
    base = dict(
        service=service,
        requests_per_second=rps,
        success_rate=1.0 if rps else None,
        p99_ms=9.75 if rps else None,
        tcp_opened_per_second=tcp,
        tcp_open_connections=4.0,
        tcp_bytes_per_second=812.0,
        p50_ms=1.25 if rps else None,
        p90_ms=3.5 if rps else None,
    )
    return ServiceSignals(**(base | kw))


ROWS = [signals(DB, tcp=0.5), signals(WEB, rps=12.4), signals(CART, rps=30.0)]


def frame(rows=ROWS, **kw) -> Frame:
    base = dict(
        now=NOW,
        prometheus="http://198.18.0.11:9090 (netns nm-c1-node1)",
        interval=2.0,
        window="1m",
        rows=rows,
    )
    return Frame(**(base | kw))


def body(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SERVICE"))
    return lines[start + 1 :]


def test_rows_are_sorted_busiest_first_then_by_tcp_rate_then_name():
    quiet = signals("a.quiet")
    assert [r.service for r in sort_rows([quiet, *ROWS])] == [CART, WEB, DB, "a.quiet"]


def test_a_wide_frame_has_every_column_and_the_header_facts():
    text = render(frame(grafana="http://grafana.example:3000"), 160)
    lines = text.splitlines()
    assert "every 2s, rate window 1m" in lines[0] and "Ctrl-C" in lines[0]
    assert (
        "http://198.18.0.11:9090" in lines[1] and "Grafana http://grafana.example:3000" in lines[1]
    )
    header = next(line for line in lines if line.startswith("SERVICE"))
    assert header.split()[1:] == [c.title for c in COLUMNS]
    cart, web, db = body(text)
    assert cart.split() == [CART, "30.00", "100.0%", "1.2", "3.5", "9.8", "0.00", "4", "812"]
    assert web.split()[:2] == [WEB, "12.40"]
    assert db.split() == [DB, "0.00", "-", "-", "-", "-", "0.50", "4", "812"]  # TCP only


def test_no_grafana_no_grafana_in_the_header():
    assert "Grafana" not in render(frame(), 160)


@pytest.mark.parametrize("width", [40, 60, 80, 100, 131])
def test_no_line_is_wider_than_the_terminal(width):
    text = render(frame(error="x" * 300), width)
    assert all(len(line) <= width for line in text.splitlines()), text


def test_a_narrow_terminal_drops_the_least_telling_columns_first():
    _, columns = columns_for(60, len(WEB))
    titles = [c.title for c in columns]
    assert "BYTES/S" not in titles and "TCP-OPEN" not in titles
    assert titles[0] == "REQ/S" and "P99(ms)" in titles
    service_width, all_columns = columns_for(200, len(CART))
    assert len(all_columns) == len(COLUMNS) and service_width > len(CART)
    service_width, columns = columns_for(100, len(WEB))  # a whole name beats the bytes column
    assert service_width >= len(WEB) and "BYTES/S" not in [c.title for c in columns]


def test_a_long_service_name_is_cut_with_an_ellipsis():
    (cart, *_) = body(render(frame(), 80))
    assert cart.split()[0].endswith("…") and CART.startswith(cart.split()[0][:-1])


def test_a_failed_refresh_shows_its_error_and_no_stale_rows():
    text = render(frame(rows=None, error="Prometheus did not answer in 5s"), 100)
    assert "! refresh failed: Prometheus did not answer in 5s" in text
    assert "SERVICE" not in text and "retrying" in text


def test_no_traffic_says_so():
    assert "no mesh traffic in the window yet" in render(frame(rows=[]), 100)


# --- the loop ---------------------------------------------------------------------------------


def test_the_loop_redraws_with_clear_home_and_sleeps_between_frames():
    written, slept, frames = [], [], iter(["one\n", "two\n", "three\n"])
    dashboard_cmd.watch(
        lambda: next(frames), written.append, interval=1.5, iterations=3, sleep=slept.append
    )
    assert written == [dashboard_cmd.HOME_CLEAR + f for f in ("one\n", "two\n", "three\n")]
    assert slept == [1.5, 1.5]


def test_ctrl_c_ends_the_loop_cleanly_and_restores_the_terminal():
    written = []

    def interrupted(_seconds):
        raise KeyboardInterrupt

    dashboard_cmd.watch(
        lambda: "frame\n",
        written.append,
        interval=1,
        iterations=None,
        sleep=interrupted,
        terminal=True,
    )
    assert written[0] == dashboard_cmd.ENTER and written[-1] == dashboard_cmd.LEAVE
    assert written[1] == dashboard_cmd.HOME_CLEAR + "frame\n" and len(written) == 3


def test_the_terminal_is_restored_when_a_frame_fails_unexpectedly():
    written = []

    def broken():
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        dashboard_cmd.watch(broken, written.append, interval=1, iterations=2, terminal=True)
    assert written == [dashboard_cmd.ENTER, dashboard_cmd.LEAVE]


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def flaky(monkeypatch):
    """A Prometheus that fails the second refresh (its first query) and answers the others."""
    queries = golden_signals.queries("1m")
    calls = {"n": 0}

    def query(state, promql, **_):
        calls["n"] += 1
        if calls["n"] == len(queries) + 1:  # the second refresh's first query
            raise prometheus.PrometheusError("Prometheus at 198.18.0.11:9090 did not answer")
        if promql == queries["requests"]:
            return {
                "resultType": "vector",
                "result": [{"metric": {"destination_service": WEB}, "value": [NOW, "3"]}],
            }
        return {"resultType": "vector", "result": []}

    monkeypatch.setattr(
        prometheus, "ensure", lambda state: prometheus.Endpoint("ns1", "198.18.0.11")
    )
    monkeypatch.setattr(prometheus, "query", query)


def test_watch_draws_n_frames_and_a_failed_refresh_stays_in_its_frame(flaky):
    args = ["--cluster", "c1", "dashboard", "--watch", "--interval", "0.01", "--iterations", "3"]
    result = CliRunner().invoke(cli, args, env={"NODEMESH_GRAFANA_URL": "http://g:3000"})
    assert result.exit_code == 0, result.output
    frames = result.output.split(dashboard_cmd.HOME_CLEAR)[1:]
    assert len(frames) == 3
    assert WEB in frames[0] and WEB in frames[2]
    assert "did not answer" in frames[1] and WEB not in frames[1]
    assert all("Grafana http://g:3000" in f for f in frames)


def test_watch_with_json_output_is_a_usage_error(flaky):
    result = CliRunner().invoke(cli, ["--cluster", "c1", "dashboard", "--watch", "-o", "json"])
    assert result.exit_code == 2 and "--watch" in result.output


def test_the_one_shot_view_names_grafana_when_configured(flaky):
    args = ["--cluster", "c1", "dashboard", "--grafana-url", "http://g:3000"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Grafana: http://g:3000" in result.output
