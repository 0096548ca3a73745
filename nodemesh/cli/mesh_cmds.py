"""`meshctl status`, `meshctl ca root`, `meshctl certs`: the control plane as operators see it."""

from __future__ import annotations

import click

from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.cli.output import emit, table
from nodemesh.local import cluster
from nodemesh.local.admin_client import AdminError, get_json
from nodemesh.local.runtime import load_plan
from nodemesh.local.system import ADMIN_PORT, AGENT_ADMIN_PORT, controller_node


def controller_admin(ctx: Ctx, path: str) -> dict:
    with user_errors():
        cluster.read_status(ctx.state)
        node = controller_node(load_plan(ctx.state))
        try:
            return get_json(node.netns, ADMIN_PORT, path)
        except AdminError as exc:
            raise click.ClickException(
                f"{exc}\nis the controller running? see 'meshctl get pods -n nodemesh-system'"
            ) from exc


def sync_state(latest: str | None, types: dict) -> tuple[str, str]:
    """(acknowledged version, SYNCED | STALE | NACKED | NOT SENT), over every type."""
    if not types:
        return "-", "NOT SENT"
    acked = {t.get("last_acked_version") for t in types.values()}
    if any(t.get("rejected") for t in types.values()):
        return ",".join(sorted(v or "-" for v in acked)), "NACKED"
    if acked == {latest}:
        return latest or "-", "SYNCED"
    return ",".join(sorted(v or "-" for v in acked)), "STALE"


@click.command("status")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]))
@pass_ctx
def status(ctx: Ctx, output: str | None) -> None:
    """Each agent and waypoint: connection and acknowledged config vs. the latest."""
    data = controller_admin(ctx, "/debug/subscribers")
    latest = data.get("version")
    rows = []
    for sub in data["subscribers"]:
        acked, state = sync_state(latest, sub["types"])
        kind, _, where = sub["id"].partition("/")
        rejected = {
            n: r for t in sub["types"].values() for n, r in (t.get("rejected") or {}).items()
        }
        rows.append(
            {
                "name": sub["id"],
                "kind": kind,
                "node": where if kind == "agent" else "",
                "connected": True,
                "acked": acked,
                "latest": latest,
                "state": state,
                "rejected": rejected,
            }
        )
    if output:
        emit({"latest": latest, "subscribers": rows}, output)
        return
    click.echo(f"controller config version {latest}")
    if not rows:
        click.echo("No agents or waypoints connected.")
        return
    click.echo(
        table(
            ["NAME", "KIND", "NODE", "ACKED", "STATUS"],
            [[r["name"], r["kind"], r["node"], r["acked"], r["state"]] for r in rows],
        )
    )
    for r in rows:
        for name, why in r["rejected"].items():
            click.echo(f"  {r['name']} rejected {name}: {why}")


@click.group("ca")
def ca() -> None:
    """The mesh's certificate authority."""


@ca.command("root")
@pass_ctx
def ca_root(ctx: Ctx) -> None:
    """Print the trust bundle (every root the mesh trusts), PEM."""
    click.echo(controller_admin(ctx, "/debug/ca")["trustBundle"], nl=False)


def agent_certs(ctx: Ctx, node: str) -> list[dict]:
    """What the node's agent holds now, from its own admin endpoint (127.0.0.1:15000)."""
    with user_errors():
        plan = load_plan(ctx.state)
        try:
            netns = plan.node(node).netns
        except KeyError:
            raise click.ClickException(f"no node {node!r}; see 'meshctl get nodes'") from None
        try:
            data = get_json(netns, AGENT_ADMIN_PORT, "/debug/certs")
        except AdminError as exc:
            raise click.ClickException(
                f"{exc}\nis the agent running? see 'meshctl get pods -n nodemesh-system'"
            ) from exc
    held = [
        {
            "identity": f"spiffe://…/nodemesh/node/{node}",
            "kind": "node",
            "requestedBy": node,
            "serial": "",
            "notAfter": data["node"]["notAfter"],
            "pem": data["node"]["pem"],
        }
    ]
    return held + [
        {
            "identity": c["identity"],
            "kind": "workload",
            "requestedBy": node,
            "serial": "",
            "notAfter": c["notAfter"],
            "pem": c["pem"],
        }
        for c in data["workloads"]
    ]


@click.command("certs")
@click.option("--node", help="The certificates this node's agent holds (from its admin endpoint).")
@click.option("-o", "--output", type=click.Choice(["table", "pem", "json"]), default="table")
@pass_ctx
def certs(ctx: Ctx, node: str | None, output: str) -> None:
    """Certificates: held by one node's agent (--node), or every one the controller signed."""
    issued = agent_certs(ctx, node) if node else controller_admin(ctx, "/debug/certs")["issued"]
    if output == "json":
        emit(issued, "json")
    elif output == "pem":
        click.echo("".join(c["pem"] for c in issued), nl=False)
    else:
        click.echo(
            table(
                ["IDENTITY", "KIND", "REQUESTED BY", "SERIAL", "NOT AFTER"],
                [
                    [c["identity"], c["kind"], c["requestedBy"], c["serial"][:12], c["notAfter"]]
                    for c in issued
                ],
            )
            if issued
            else "No certificates issued yet."
        )
