"""`meshctl trace`: a connection's path from the config (`--explain`), or live flow events.

Thin on purpose. `meshctl trace FROM TO --explain` reads the local cluster's objects the way the
controller does (`LocalRegistry.objects`: the store plus the runtime's pods), hands them to
`nodemesh.trace.explain` and prints the `Trace`. `meshctl trace --follow` / `--last N` read
the flow events every agent and waypoint records (`nodemesh.flows_local` visits each admin
endpoint; `nodemesh.flows` merges and filters), one line or one JSON object per event; with
`--kubeconfig`/`--context`, the relays of a Kubernetes cluster's controller replicas, through
the API server's port-forward (`nodemesh.flows_kube`). Without
`--explain`, `meshctl trace FROM TO` sends a real probe from FROM's pod and prints the hops its
flow events show (`nodemesh.trace.live`), in the same form as `--explain`.
"""

from __future__ import annotations

import json
from functools import partial

import click

from controller.model import DEFAULT_TRUST_DOMAIN
from controller.registry_local import LocalRegistry
from controller.translate import translate
from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.cli.kube import kube_options, load_api
from nodemesh.cli.output import emit
from nodemesh.cli.pod_cmds import find_pod, pick_container
from nodemesh.flows import FlowFilter, FlowFilterError, Follower, line, merge, tail
from nodemesh.flows_kube import NAMESPACE as CONTROLLER_NAMESPACE
from nodemesh.flows_kube import NoControllerError, ReplicaFinder
from nodemesh.flows_local import RelayUnavailable, pick_sources, rounds
from nodemesh.local import cluster
from nodemesh.trace import HttpProbe, Probe, Trace, TraceError, explain, parse_header, render
from nodemesh.trace.live import LivePlan, live_trace
from nodemesh.trace.live_local import LocalFlows, PodRunner
from nodemesh.trace.live_probe import ProbeOutputError, new_marks
from nodemesh.trace.probe import resolve_target, source_workload

FOLLOW_INTERVAL = 0.5  # seconds between polls: live requests show within a second


@click.command("trace")
@click.argument("source", metavar="FROM", required=False)
@click.argument("target", metavar="TO", required=False)
@click.option(
    "-n", "--namespace", help="Namespace of FROM/TO (default: default); with --follow, of either."
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
@click.option("--follow", is_flag=True, help="Print flow events as they happen, until Ctrl-C.")
@click.option("--last", type=click.IntRange(0), help="Print the last N flow events (then exit).")
@click.option("--from", "from_", metavar="POD", help="Events from this pod (with --follow/--last).")
@click.option("--to", metavar="POD|SVC", help="Events to this pod or Service.")
@click.option(
    "--verdict", type=click.Choice(["FORWARDED", "DENIED", "ERROR"], case_sensitive=False)
)
@click.option(
    "--http-status", metavar="N", help="Events with this HTTP status (403) or class (5xx)."
)
@click.option(
    "--source",
    "flow_source",
    type=click.Choice(["relay", "components"]),
    help="Read flow events from the controller's relay or from each component "
    "(default: the relay when it answers).",
)
@kube_options(kubeconfig_env=False)
@click.option(
    "--namespace-of-controller",
    "controller_namespace",
    default=CONTROLLER_NAMESPACE,
    show_default=True,
    help="With --kubeconfig/--context: where the controller runs.",
)
@click.option("--trust-domain", default=DEFAULT_TRUST_DOMAIN, show_default=True)
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]))
@pass_ctx
def trace(
    ctx: Ctx,
    source,
    target,
    namespace,
    port,
    http,
    headers,
    explain_,
    trust_domain,
    output,
    follow,
    last,
    from_,
    to,
    verdict,
    http_status,
    flow_source,
    kubeconfig,
    context,
    controller_namespace,
):
    """The path of a connection from pod FROM to TO (a pod, a Service or an IP), hop by hop;
    or, with --follow / --last N, the mesh's flow events as agents and waypoints record them."""
    if follow or last is not None:
        if source or target or explain_:
            raise click.UsageError("--follow/--last take --from/--to filters, not FROM TO")
        if output == "yaml":
            raise click.UsageError("flow events print as text or JSON lines: use -o json")
        try:
            flt = FlowFilter.parse(
                source=from_,
                destination=to,
                namespace=namespace,
                verdict=verdict,
                http_status=http_status,
            )
        except FlowFilterError as exc:
            raise click.UsageError(str(exc)) from exc
        if kubeconfig or context:
            if flow_source == "components":
                raise click.UsageError(
                    "--source components reads a local cluster's components; on Kubernetes "
                    "the controllers' relays are read (drop --source)"
                )
            finder = _kube_finder(kubeconfig, context, controller_namespace)
        else:
            finder = _local_finder(ctx, flow_source)
        _flows(finder, flt, follow=follow, last=last, as_json=output == "json")
        return
    if not source or not target:
        raise click.UsageError(
            "give FROM and TO (optionally --explain), or use --follow / --last N"
        )
    with user_errors():
        cluster.read_status(ctx.state)  # a clear error when there is no cluster
        objects = LocalRegistry(ctx.state.path).objects()
    try:
        probe = Probe(source, target, namespace or "default", port, _http(http, headers))
        if explain_:
            result = explain(objects, probe, trust_domain=trust_domain)
        else:
            result = _live(ctx, objects, probe, trust_domain)
    except (TraceError, ProbeOutputError) as exc:
        raise click.ClickException(str(exc)) from exc
    if output:
        emit(result.to_dict(), output)
    else:
        click.echo(render(result))


def _live(ctx: Ctx, objects: list[dict], probe: Probe, trust_domain: str) -> Trace:
    """Send the probe from FROM's pod and read its path back from the flow events."""
    snapshot = translate(objects, trust_domain=trust_domain).snapshot
    workload = source_workload(snapshot, probe)
    target = resolve_target(snapshot, objects, probe)
    pod = find_pod(ctx, workload.name, workload.namespace)
    runner = PodRunner(pod["sandbox"], pick_container(pod, None), workload.name)
    plan = LivePlan(workload.namespace, workload.name, target, probe.http, new_marks())
    return live_trace(plan, run=runner, flows=LocalFlows(ctx.state))


def _local_finder(ctx: Ctx, forced: str | None):
    """The local cluster's relay (or every agent and waypoint), as `rounds` looks them up."""
    with user_errors():
        cluster.read_status(ctx.state)
    try:
        find, note = pick_sources(ctx.state, forced)
    except RelayUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if note:
        click.echo(note, err=True)
    return partial(find, ctx.state)


def _kube_finder(kubeconfig: str | None, context: str | None, namespace: str) -> ReplicaFinder:
    """Every ready controller replica's relay; a clear error now when none can be read."""
    finder = ReplicaFinder(load_api(kubeconfig, context), namespace)
    try:
        warnings = finder.first()
    except NoControllerError as exc:
        raise click.ClickException(str(exc)) from exc
    for warning in warnings:
        click.echo(warning, err=True)
    return finder


def _flows(find, flt: FlowFilter, *, follow: bool, last: int | None, as_json: bool) -> None:
    """Poll the sources `find` names each round; print what passes; stop on Ctrl-C."""
    follower = Follower(history=last is not None)
    reported: dict[str, int] = {}
    try:
        for i, batches in enumerate(rounds(find, follower, FOLLOW_INTERVAL)):
            events = merge(batches, flt)
            if i == 0 and last is not None:
                events = tail(events, last)
            for event in events:
                click.echo(json.dumps(event.to_dict(), sort_keys=True) if as_json else line(event))
            _report_missed(follower, reported)
            if not follow:
                return
    except KeyboardInterrupt:
        return


def _report_missed(follower: Follower, reported: dict[str, int]) -> None:
    for name, missed in follower.missed.items():
        if missed > reported.get(name, 0):
            click.echo(
                f"warning: {name} overwrote {missed - reported.get(name, 0)} events before they "
                "were read; narrow the filters or follow from closer to the source",
                err=True,
            )
            reported[name] = missed


def _http(http: tuple[str, str] | None, headers: tuple[str, ...]) -> HttpProbe | None:
    parsed = tuple(parse_header(h) for h in headers)
    if http:
        method, path = http
        if not path.startswith("/"):
            raise TraceError(f"--http path {path!r} must start with '/': --http GET /public")
        return HttpProbe(method.upper(), path, parsed)
    return HttpProbe(headers=parsed) if parsed else None
