"""`meshctl dashboard`: where the cluster's Prometheus is, and a `top`-like view of golden signals.

Prometheus listens on node1's underlay address, inside node1's network namespace, so the host
cannot browse to it directly. The command prints its URL and how to reach it (`ip netns exec`),
and Grafana's when the user says where it is (`--grafana-url` / NODEMESH_GRAFANA_URL); runs any
PromQL for the user (`--query`); and otherwise shows, per service, requests per second, success
rate and p50/p90/p99 latency (waypoint metrics) and TCP connection and byte rates (agent
metrics). `--watch` redraws that view every `--interval` seconds, like `top`: a failed refresh
shows its error in the frame and the view carries on; Ctrl-C leaves it and restores the
terminal. The work is in nodemesh.local.prometheus, .golden_signals and nodemesh.cli.top_view.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable

import click

from nodemesh.cli import top_view
from nodemesh.cli.context import Ctx, pass_ctx
from nodemesh.cli.output import emit, table
from nodemesh.local import golden_signals, prometheus
from nodemesh.local.state import StateDir

HOME_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: each frame redraws the whole view
ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, cursor hidden (a terminal only)
LEAVE = "\x1b[?25h\x1b[?1049l"  # cursor shown, back to the user's screen as it was
FALLBACK_SIZE = (100, 24)  # not a terminal (a pipe, a test): render this wide


def _endpoint(state: StateDir) -> prometheus.Endpoint:
    try:
        return prometheus.ensure(state)
    except prometheus.PrometheusError as exc:
        raise click.ClickException(str(exc)) from exc


def _query(state: StateDir, promql: str) -> dict:
    try:
        return prometheus.query(state, promql)
    except prometheus.PrometheusError as exc:
        raise click.ClickException(str(exc)) from exc


def how_to_reach(endpoint: prometheus.Endpoint, grafana: str | None = None) -> str:
    return (
        f"Prometheus: {endpoint.url} (inside network namespace {endpoint.netns})\n"
        f"  from the host: ip netns exec {endpoint.netns} curl -s "
        f"'{endpoint.url}/api/v1/query?query=up'\n"
        f"  or let meshctl run it: meshctl dashboard --query 'up'"
        + (f"\nGrafana: {grafana}" if grafana else "")
    )


def signals_table(rows: list[golden_signals.ServiceSignals]) -> str:
    if not rows:
        return "no mesh traffic in the window yet"
    headers = ["SERVICE", *(c.title for c in top_view.COLUMNS)]
    return table(
        headers,
        [[r.service or "<none>", *(c.cell(r) for c in top_view.COLUMNS)] for r in rows],
    )


def vector_table(data: dict) -> str:
    """A query result for people: one row per series (labels, value)."""
    kind = data.get("resultType")
    if kind in ("scalar", "string"):
        return str(data["result"][1])
    if kind != "vector":
        return f"{kind} result; use -o json to see it"
    if not data["result"]:
        return "no data"
    rows = [
        [
            "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(s["metric"].items())) + "}",
            s["value"][1],
        ]
        for s in data["result"]
    ]
    return table(["SERIES", "VALUE"], rows)


def watch(
    frame: Callable[[], str],
    write: Callable[[str], None],
    *,
    interval: float,
    iterations: int | None,
    sleep: Callable[[float], None] = time.sleep,
    terminal: bool = False,
) -> None:
    """Redraw `frame()` every `interval` s, `iterations` times (None: until Ctrl-C).

    Ctrl-C ends the view cleanly (no traceback, exit 0); on a terminal the alternate screen and
    hidden cursor it took are given back, also when something else fails.
    """
    if terminal:
        write(ENTER)
    try:
        drawn = 0
        while iterations is None or drawn < iterations:
            if drawn:
                sleep(interval)
            write(HOME_CLEAR + frame())
            drawn += 1
    except KeyboardInterrupt:
        pass
    finally:
        if terminal:
            write(LEAVE)


def refresh(
    query: Callable[[str], dict], window: str
) -> tuple[list[golden_signals.ServiceSignals] | None, str | None]:
    """(rows, None), or (None, why) when Prometheus or a result failed: the view keeps going."""
    try:
        return golden_signals.collect(query, window), None
    except (prometheus.PrometheusError, golden_signals.QueryResultError, OSError) as exc:
        return None, str(exc) or type(exc).__name__


def _watch(ctx: Ctx, endpoint: prometheus.Endpoint, window, interval, iterations, grafana):
    def frame() -> str:
        rows, error = refresh(lambda q: prometheus.query(ctx.state, q), window)
        where = f"{endpoint.url} (netns {endpoint.netns})"
        shown = top_view.Frame(time.time(), where, interval, window, rows, error, grafana)
        return top_view.render(shown, shutil.get_terminal_size(FALLBACK_SIZE).columns)

    stdout = sys.stdout  # click's runner swaps it in tests

    def write(text: str) -> None:
        stdout.write(text)
        stdout.flush()

    watch(frame, write, interval=interval, iterations=iterations, terminal=stdout.isatty())


@click.command("dashboard")
@click.option("--query", "-q", "promql", help="Run this PromQL (instant query) and print it.")
@click.option(
    "--window",
    default=golden_signals.DEFAULT_WINDOW,
    show_default=True,
    help="Rate window for the golden signals (at least twice the scrape interval).",
)
@click.option("--watch", "watching", is_flag=True, help="Refresh the view like top (Ctrl-C quits).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    help="Stop --watch after this many frames (scripts and tests); default: until Ctrl-C.",
)
@click.option(
    "--grafana-url",
    envvar="NODEMESH_GRAFANA_URL",
    help="Grafana's URL, shown next to Prometheus's [env: NODEMESH_GRAFANA_URL].",
)
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]))
@pass_ctx
def dashboard(
    ctx: Ctx,
    promql: str | None,
    window: str,
    watching: bool,
    interval: float,
    iterations: int | None,
    grafana_url: str | None,
    output: str | None,
) -> None:
    """Show the cluster's Prometheus and each service's golden signals (starts it if needed)."""
    if watching and (output or promql is not None):
        raise click.UsageError("--watch draws the live view: drop -o/--query, or drop --watch")
    endpoint = _endpoint(ctx.state)
    if watching:
        _watch(ctx, endpoint, window, interval, iterations, grafana_url)
        return
    if promql is not None:
        data = _query(ctx.state, promql)
        if output:
            emit(data, output)
        else:
            click.echo(vector_table(data))
        return
    try:
        rows = golden_signals.collect(lambda q: _query(ctx.state, q), window)
    except golden_signals.QueryResultError as exc:
        raise click.ClickException(str(exc)) from exc
    if output:
        doc = {"prometheus": {"url": endpoint.url, "netns": endpoint.netns}}
        if grafana_url:
            doc["grafana"] = {"url": grafana_url}
        emit({**doc, "window": window, "services": [r.to_json() for r in rows]}, output)
        return
    click.echo(how_to_reach(endpoint, grafana_url))
    click.echo()
    click.echo(signals_table(top_view.sort_rows(rows)))
