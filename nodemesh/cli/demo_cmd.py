"""`meshctl demo`."""

from __future__ import annotations

import click

from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.demo import DemoError, run_demo


@click.command("demo")
@pass_ctx
def demo(ctx: Ctx) -> None:
    """Bring up a local cluster, deploy the hello app and call it across nodes."""
    with user_errors():
        try:
            run_demo(ctx.state, click.echo)
        except DemoError as exc:
            raise click.ClickException(str(exc)) from exc
