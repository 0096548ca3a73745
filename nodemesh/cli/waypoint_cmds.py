"""`meshctl waypoint apply|list|delete`: waypoints as Gateways of class nodemesh-waypoint.

Thin commands over nodemesh.cli.waypoint_ops; the flags follow `istioctl waypoint` so habits
carry over (`--enroll-namespace`, `--name`, `--all`). The controller deploys each Gateway as a
pod (controller.waypoints), so `apply` returns once the Gateway is stored and, with `--wait`,
once the waypoint has a ready pod.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.cli.output import emit, table
from nodemesh.cli.waypoint_ops import (
    DEFAULT_NAME,
    WaypointOpError,
    WaypointRow,
    enrolled_namespace,
    gateway_manifest,
    gateways_to_delete,
    still_labelled,
    wait_ready,
    waypoint_rows,
)
from nodemesh.local import cluster
from nodemesh.local.store import Store


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    with user_errors():
        try:
            yield
        except WaypointOpError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group("waypoint")
def waypoint() -> None:
    """Waypoints: per-namespace L7 proxies that Services and pods opt into with a label."""


_namespace_option = click.option("-n", "--namespace", default="default", show_default=True)


@waypoint.command("apply")
@_namespace_option
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="The waypoint's name.")
@click.option(
    "--enroll-namespace",
    is_flag=True,
    help="Label the namespace nodemesh.io/use-waypoint=NAME: its Services and pods use it.",
)
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait for a ready waypoint pod."
)
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait.")
@pass_ctx
def apply(
    ctx: Ctx, namespace: str, name: str, enroll_namespace: bool, wait: bool, timeout: float
) -> None:
    """Create or update a waypoint (a Gateway of class nodemesh-waypoint)."""
    with _errors():
        cluster.read_status(ctx.state)  # a clear error when there is no cluster
        store = Store(ctx.state)
        manifests = [gateway_manifest(namespace, name)]
        if enroll_namespace:
            manifests.insert(0, enrolled_namespace(store.objects(), namespace, name))
        for change in store.apply(manifests):
            click.echo(str(change))
        cluster.wake_runtime(ctx.state)
        if not wait:
            return
        reason = wait_ready(lambda: cluster.read_status(ctx.state), namespace, name, timeout)
    if reason is not None:
        raise click.ClickException(f"not ready after {timeout:g}s: {reason}")
    click.echo(f"waypoint {namespace}/{name} is ready")


@waypoint.command("list")
@_namespace_option
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]))
@pass_ctx
def list_(ctx: Ctx, namespace: str, all_namespaces: bool, output: str | None) -> None:
    """Waypoints, their ready pods and addresses, and what uses them."""
    with _errors():
        status = cluster.read_status(ctx.state)
        objects = Store(ctx.state).objects()
    rows = waypoint_rows(objects, status["pods"], None if all_namespaces else namespace)
    if output:
        emit({"waypoints": [row.as_dict() for row in rows]}, output)
    elif not rows:
        where = "" if all_namespaces else f" in namespace {namespace!r}"
        click.echo(f"No waypoints found{where}.")
    else:
        click.echo(_table(rows, all_namespaces))


def _table(rows: list[WaypointRow], all_namespaces: bool) -> str:
    headers = ["NAME", "STATUS", "READY", "ADDRESS", "USED BY"]
    cells = [_cells(r) for r in rows]
    if all_namespaces:
        headers = ["NAMESPACE", *headers]
        cells = [[r.namespace, *c] for r, c in zip(rows, cells, strict=True)]
    return table(headers, cells)


def _cells(row: WaypointRow) -> list[str]:
    address = ",".join(row.addresses) or "<none>"
    return [row.name, row.status, f"{row.ready_pods}/{row.pods}", address, row.used_by()]


@waypoint.command("delete")
@click.argument("names", nargs=-1)
@_namespace_option
@click.option("--all", "everything", is_flag=True, help="Delete every waypoint of the namespace.")
@pass_ctx
def delete(ctx: Ctx, names: tuple[str, ...], namespace: str, everything: bool) -> None:
    """Delete waypoints by NAME (default: 'waypoint'), or --all of the namespace."""
    if names and everything:
        raise click.UsageError("name waypoints or pass --all, not both")
    with _errors():
        cluster.read_status(ctx.state)
        store = Store(ctx.state)
        objects = store.objects()
        manifests = gateways_to_delete(objects, namespace, names, everything)
        changes = store.delete(manifests) if manifests else []
        if any(change.action == "deleted" for change in changes):
            cluster.wake_runtime(ctx.state)
    if not manifests:
        click.echo(f"No waypoints found in namespace {namespace!r}.")
    for change in changes:
        click.echo(str(change))
    deleted = [c.name for c in changes if c.action == "deleted"]
    for warning in still_labelled(objects, namespace, deleted):
        click.echo(f"warning: {warning}", err=True)
    missing = [c.name for c in changes if c.action == "not found"]
    if missing:
        raise click.ClickException(
            f"no waypoint {', '.join(missing)} in namespace {namespace!r}; see 'meshctl waypoint "
            f"list -n {namespace}'"
        )
