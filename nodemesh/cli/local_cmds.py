"""`meshctl local up|down|status`."""

from __future__ import annotations

import click

from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.cli.output import emit, table
from nodemesh.local import cluster
from nodemesh.local.state import StateDir


@click.group("local")
def local() -> None:
    """Run nodemesh on this machine: nodes and pods as network namespaces."""


@local.command("up")
@click.option("--nodes", default=2, show_default=True, help="Number of nodes.")
@click.option(
    "--prometheus/--no-prometheus",
    default=True,
    show_default=True,
    help="Run Prometheus (if installed) as a system pod scraping every mesh component.",
)
@pass_ctx
def up(ctx: Ctx, nodes: int, prometheus: bool) -> None:
    """Create the local cluster (safe to run again)."""
    with user_errors():
        result = cluster.up(ctx.state, nodes, prometheus=prometheus)
    click.echo(result.note)
    for node in result.plan.nodes:
        click.echo(f"  {node.name}: {node.address}, pods {node.pod_cidr} (netns {node.netns})")
    click.echo(result.prometheus)


@local.command("down")
@click.option(
    "--all", "everything", is_flag=True, help="Remove every local cluster on this machine."
)
@pass_ctx
def down(ctx: Ctx, everything: bool) -> None:
    """Remove the local cluster and everything it made, also after a crash."""
    names = cluster.all_cluster_names() if everything else [ctx.cluster]
    with user_errors():
        for name in names:
            removed = cluster.down(StateDir(name))
            click.echo(f"cluster {name!r}: " + ("removed" if removed else "nothing to remove"))


@local.command("status")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]))
@pass_ctx
def status(ctx: Ctx, output: str | None) -> None:
    """Show the cluster's nodes, runtime and workload counts."""
    with user_errors():
        st = cluster.read_status(ctx.state)
    summary = {
        "cluster": st["cluster"],
        "runtime": "running" if st["runtimeAlive"] else "stopped",
        "runtimePid": st.get("runtimePid"),
        "observedGeneration": st.get("observedGeneration"),
        "nodes": st["nodes"],
        "pods": len(st["pods"]),
        "podsReady": sum(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
            for p in st["pods"]
        ),
        "services": len(st["services"]),
    }
    if output:
        emit(summary, output)
        return
    click.echo(
        f"cluster {summary['cluster']}: runtime {summary['runtime']}, "
        f"{summary['podsReady']}/{summary['pods']} pods ready, {summary['services']} services"
    )
    click.echo(
        table(
            ["NODE", "ADDRESS", "POD-CIDR", "NETNS"],
            [[n["name"], n["address"], n["pod_cidr"], n["netns"]] for n in st["nodes"]],
        )
    )
