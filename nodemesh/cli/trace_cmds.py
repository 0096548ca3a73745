"""`meshctl trace FROM TO --explain`: a connection's path, hop by hop, from the current config.

Thin on purpose: read the local cluster's objects the way the controller does
(`LocalRegistry.objects`: the store plus the runtime's pods), hand them to
`nodemesh.trace.explain`, print the `Trace`. The live probe (sending real traffic and reading
flow events) will reuse the same `Trace` rendering; until it exists, `--explain` is required.
"""

from __future__ import annotations

import click

from controller.model import DEFAULT_TRUST_DOMAIN
from controller.registry_local import LocalRegistry
from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.cli.output import emit
from nodemesh.local import cluster
from nodemesh.trace import HttpProbe, Probe, TraceError, explain, parse_header, render


@click.command("trace")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@click.option(
    "-n", "--namespace", default="default", show_default=True, help="Namespace of FROM/TO."
)
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Destination port (TO's only one if unset)."
)
@click.option(
    "--http", nargs=2, metavar="METHOD PATH", help="Explain this HTTP request at a waypoint."
)
@click.option(
    "-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Request header."
)
@click.option(
    "--explain",
    "explain_",
    is_flag=True,
    help="Work the path out from configuration; send nothing.",
)
@click.option("--trust-domain", default=DEFAULT_TRUST_DOMAIN, show_default=True)
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]))
@pass_ctx
def trace(ctx: Ctx, source, target, namespace, port, http, headers, explain_, trust_domain, output):
    """The path of a connection from pod FROM to TO (a pod, a Service or an IP), hop by hop."""
    if not explain_:
        raise click.ClickException(
            "the live probe is not available yet; add --explain to work the path out from the "
            "current configuration without sending traffic"
        )
    with user_errors():
        cluster.read_status(ctx.state)  # a clear error when there is no cluster
        objects = LocalRegistry(ctx.state.path).objects()
    try:
        probe = Probe(source, target, namespace, port, _http(http, headers))
        result = explain(objects, probe, trust_domain=trust_domain)
    except TraceError as exc:
        raise click.ClickException(str(exc)) from exc
    if output:
        emit(result.to_dict(), output)
    else:
        click.echo(render(result))


def _http(http: tuple[str, str] | None, headers: tuple[str, ...]) -> HttpProbe | None:
    parsed = tuple(parse_header(h) for h in headers)
    if http:
        method, path = http
        if not path.startswith("/"):
            raise TraceError(f"--http path {path!r} must start with '/': --http GET /public")
        return HttpProbe(method.upper(), path, parsed)
    return HttpProbe(headers=parsed) if parsed else None
