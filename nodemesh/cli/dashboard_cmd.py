"""`meshctl dashboard`: where the cluster's Prometheus is, and a one-shot view of golden signals.

Prometheus listens on node1's underlay address, inside node1's network namespace, so the host
cannot browse to it directly. The command prints its URL and how to reach it (`ip netns exec`),
runs any PromQL for the user (`--query`), and otherwise shows, per service, requests per second,
success rate and p99 latency (waypoint metrics) and TCP connection and byte rates (agent metrics),
like `top` for the mesh. The work is in nodemesh.local.prometheus and .golden_signals.
"""

from __future__ import annotations

import click

from nodemesh.cli.context import Ctx, pass_ctx
from nodemesh.cli.output import emit, table
from nodemesh.local import golden_signals, prometheus
from nodemesh.local.state import StateDir


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


def how_to_reach(endpoint: prometheus.Endpoint) -> str:
    return (
        f"Prometheus: {endpoint.url} (inside network namespace {endpoint.netns})\n"
        f"  from the host: ip netns exec {endpoint.netns} curl -s "
        f"'{endpoint.url}/api/v1/query?query=up'\n"
        f"  or let meshctl run it: meshctl dashboard --query 'up'"
    )


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def signals_table(rows: list[golden_signals.ServiceSignals]) -> str:
    if not rows:
        return "no mesh traffic in the window yet"
    headers = ["SERVICE", "REQ/S", "SUCCESS", "P99(ms)", "TCP-CONN/S", "TCP-OPEN", "BYTES/S"]
    return table(
        headers,
        [
            [
                r.service or "<none>",
                _num(r.requests_per_second, ".2f"),
                "-" if r.success_rate is None else f"{r.success_rate * 100:.1f}%",
                _num(r.p99_ms, ".1f"),
                _num(r.tcp_opened_per_second, ".2f"),
                _num(r.tcp_open_connections, ".0f"),
                _num(r.tcp_bytes_per_second, ".0f"),
            ]
            for r in rows
        ],
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


@click.command("dashboard")
@click.option("--query", "-q", "promql", help="Run this PromQL (instant query) and print it.")
@click.option(
    "--window",
    default=golden_signals.DEFAULT_WINDOW,
    show_default=True,
    help="Rate window for the golden signals (at least twice the scrape interval).",
)
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]))
@pass_ctx
def dashboard(ctx: Ctx, promql: str | None, window: str, output: str | None) -> None:
    """Show the cluster's Prometheus and each service's golden signals (starts it if needed)."""
    endpoint = _endpoint(ctx.state)
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
        emit({**doc, "window": window, "services": [r.to_json() for r in rows]}, output)
        return
    click.echo(how_to_reach(endpoint))
    click.echo()
    click.echo(signals_table(rows))
