"""`meshctl`: a thin click group over nodemesh's library objects.

Errors the user can fix exit 1 with one line saying what to do; usage errors exit 2 (click's rule).
"""

from __future__ import annotations

import click

from nodemesh.cli.analyze_cmd import analyze
from nodemesh.cli.context import Ctx
from nodemesh.cli.dashboard_cmd import dashboard
from nodemesh.cli.demo_cmd import demo
from nodemesh.cli.install_cmds import install, uninstall
from nodemesh.cli.local_cmds import local
from nodemesh.cli.mesh_cmds import ca, certs, status
from nodemesh.cli.objects import apply, delete, get
from nodemesh.cli.pod_cmds import exec_, logs
from nodemesh.cli.trace_cmds import trace
from nodemesh.cli.waypoint_cmds import waypoint
from nodemesh.local.state import DEFAULT_CLUSTER


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--cluster",
    envvar="NODEMESH_CLUSTER",
    default=DEFAULT_CLUSTER,
    show_default=True,
    help="Local cluster to act on (env NODEMESH_CLUSTER).",
)
@click.version_option(package_name="nodemesh")
@click.pass_context
def cli(click_ctx: click.Context, cluster: str) -> None:
    """nodemesh: a sidecarless, eBPF-based service mesh."""
    click_ctx.obj = Ctx(cluster=cluster)


for command in (local, apply, delete, get, exec_, logs, demo, status, ca, certs, waypoint):
    cli.add_command(command)
cli.add_command(dashboard)
cli.add_command(trace)
cli.add_command(install), cli.add_command(uninstall)
cli.add_command(analyze)


def main() -> None:
    cli()
