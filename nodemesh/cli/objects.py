"""`meshctl apply|delete -f` and `meshctl get`."""

from __future__ import annotations

import click

from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.cli.output import age, emit, table
from nodemesh.local import cluster
from nodemesh.local.cluster import ClusterError
from nodemesh.local.store import Store
from nodemesh.local.wait import wait_for
from nodemesh.manifests.load import load_paths


def _files_option(f):
    return click.option(
        "-f",
        "--filename",
        "paths",
        multiple=True,
        required=True,
        help="Manifest file or directory ('-' for stdin); repeatable.",
    )(f)


def _wait_options(f):
    f = click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Wait until pods are ready (or gone).",
    )(f)
    return click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait.")(f)


def _change_objects(ctx: Ctx, paths, action: str, wait: bool, timeout: float) -> None:
    with user_errors():
        cluster.read_status(ctx.state)  # a clear error when there is no cluster
        manifests = load_paths(list(paths))
        store = Store(ctx.state)
        changes = getattr(store, action)(manifests)
        for change in changes:
            click.echo(str(change))
        generation = store.generation()
        cluster.wake_runtime(ctx.state)
        if wait:
            waiting = wait_for(
                ctx.state,
                generation,
                [m.obj for m in manifests],
                deleted=action == "delete",
                timeout=timeout,
            )
            if waiting:
                raise ClusterError(
                    f"not ready after {timeout:g}s:\n  "
                    + "\n  ".join(waiting)
                    + "\nsee 'meshctl get pods -A' and 'meshctl logs POD'"
                )


@click.command("apply")
@_files_option
@_wait_options
@pass_ctx
def apply(ctx: Ctx, paths, wait: bool, timeout: float) -> None:
    """Create or update objects from manifests; all documents land or none does."""
    _change_objects(ctx, paths, "apply", wait, timeout)


@click.command("delete")
@_files_option
@_wait_options
@pass_ctx
def delete(ctx: Ctx, paths, wait: bool, timeout: float) -> None:
    """Delete the objects the manifests name."""
    _change_objects(ctx, paths, "delete", wait, timeout)


KINDS = {
    "nodes": "Node",
    "node": "Node",
    "no": "Node",
    "namespaces": "Namespace",
    "namespace": "Namespace",
    "ns": "Namespace",
    "pods": "Pod",
    "pod": "Pod",
    "po": "Pod",
    "services": "Service",
    "service": "Service",
    "svc": "Service",
    "deployments": "Deployment",
    "deployment": "Deployment",
    "deploy": "Deployment",
    "serviceaccounts": "ServiceAccount",
    "serviceaccount": "ServiceAccount",
    "sa": "ServiceAccount",
    "authorizationpolicies": "AuthorizationPolicy",
    "authorizationpolicy": "AuthorizationPolicy",
    "peerauthentications": "PeerAuthentication",
    "peerauthentication": "PeerAuthentication",
    "httproutes": "HTTPRoute",
    "httproute": "HTTPRoute",
    "gateways": "Gateway",
    "gateway": "Gateway",
    "gtw": "Gateway",
}


@click.command("get")
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["wide", "json", "yaml"]))
@pass_ctx
def get(
    ctx: Ctx, kind: str, name: str | None, namespace: str, all_namespaces: bool, output: str | None
) -> None:
    """List objects: nodes, namespaces, pods, services, deployments, serviceaccounts, …"""
    canonical = KINDS.get(kind.lower())
    if canonical is None:
        raise click.BadParameter(
            f"unknown kind {kind!r}; try one of: {', '.join(sorted(set(KINDS)))}"
        )
    with user_errors():
        status = cluster.read_status(ctx.state)
        items = _items(ctx, status, canonical)
    if canonical not in ("Node", "Namespace"):
        items = [i for i in items if all_namespaces or i["metadata"].get("namespace") == namespace]
    if name:
        items = [i for i in items if i["metadata"]["name"] == name]
        if not items:
            raise click.ClickException(f"{kind} {name!r} not found in namespace {namespace!r}")
    if output in ("json", "yaml"):
        emit(items[0] if name else {"apiVersion": "v1", "kind": "List", "items": items}, output)
        return
    headers, rows = ROWS.get(canonical, _generic_rows)(items, status, output == "wide")
    if all_namespaces and canonical not in ("Node", "Namespace"):
        headers = ["NAMESPACE", *headers]
        rows = [[i["metadata"]["namespace"], *r] for i, r in zip(items, rows, strict=True)]
    click.echo(table(headers, rows) if rows else "No resources found.")


def _items(ctx: Ctx, status: dict, kind: str) -> list[dict]:
    if kind == "Pod":
        return status["pods"]
    if kind == "Node":
        return [
            {
                "kind": "Node",
                "metadata": {"name": n["name"]},
                "spec": {"podCIDR": n["pod_cidr"]},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": n["address"]}],
                    "netns": n["netns"],
                },
            }
            for n in status["nodes"]
        ]
    objects = Store(ctx.state).objects()
    if kind == "Namespace":
        named = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
        builtin = [
            {"kind": "Namespace", "metadata": {"name": n, "labels": {}}}
            for n in ("default", "nodemesh-system")
            if n not in named
        ]
        return builtin + [o for o in objects if o["kind"] == "Namespace"]
    items = [o for o in objects if o["kind"] == kind]
    if kind == "Service":
        eps = {(s["namespace"], s["name"]): s["endpoints"] for s in status["services"]}
        for item in items:
            item["status"] = {
                "endpoints": eps.get((item["metadata"]["namespace"], item["metadata"]["name"]), {})
            }
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def _pod_rows(items, _status, wide):
    rows = []
    for p in items:
        cs = p["status"].get("containerStatuses", [])
        row = [
            p["metadata"]["name"],
            f"{sum(c['ready'] for c in cs)}/{len(p['spec']['containers'])}",
            p["status"].get("display", p["status"]["phase"]),
            sum(c["restartCount"] for c in cs),
            age(p["metadata"].get("creationTimestamp")),
        ]
        if wide:
            row += [p["status"].get("podIP", "<none>"), p["spec"].get("nodeName", "<none>")]
        rows.append(row)
    headers = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
    return headers, rows


def _svc_rows(items, _status, wide):
    rows = []
    for s in items:
        ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in s["spec"]["ports"])
        row = [
            s["metadata"]["name"],
            "ClusterIP",
            s["spec"].get("clusterIP") or "None",
            ports,
            age(s["metadata"].get("creationTimestamp")),
        ]
        if wide:
            eps = sorted(
                {f"{e['ip']}:{e['port']}" for v in s["status"]["endpoints"].values() for e in v}
            )
            row += [
                ",".join(f"{k}={v}" for k, v in (s["spec"].get("selector") or {}).items()),
                ",".join(eps) or "<none>",
            ]
        rows.append(row)
    headers = ["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"] + (
        ["SELECTOR", "ENDPOINTS"] if wide else []
    )
    return headers, rows


def _deploy_rows(items, status, _wide):
    rows = []
    for d in items:
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        mine = [
            p
            for p in status["pods"]
            if p["metadata"]["namespace"] == ns
            and {"kind": "Deployment", "name": name} in p["metadata"].get("ownerReferences", [])
        ]
        ready = sum(
            any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
            for p in mine
        )
        rows.append(
            [
                name,
                f"{ready}/{d['spec'].get('replicas', 1)}",
                age(d["metadata"].get("creationTimestamp")),
            ]
        )
    return ["NAME", "READY", "AGE"], rows


def _node_rows(items, status, _wide):
    counts = {}
    for p in status["pods"]:
        node = p["spec"].get("nodeName")
        counts[node] = counts.get(node, 0) + 1
    return ["NAME", "STATUS", "INTERNAL-IP", "POD-CIDR", "PODS"], [
        [
            n["metadata"]["name"],
            "Ready",
            n["status"]["addresses"][0]["address"],
            n["spec"]["podCIDR"],
            counts.get(n["metadata"]["name"], 0),
        ]
        for n in items
    ]


def _ns_rows(items, _status, _wide):
    return ["NAME", "LABELS"], [
        [
            n["metadata"]["name"],
            ",".join(f"{k}={v}" for k, v in (n["metadata"].get("labels") or {}).items())
            or "<none>",
        ]
        for n in items
    ]


def _generic_rows(items, _status, _wide):
    return ["NAME", "AGE"], [
        [i["metadata"]["name"], age(i["metadata"].get("creationTimestamp"))] for i in items
    ]


ROWS = {
    "Pod": _pod_rows,
    "Service": _svc_rows,
    "Deployment": _deploy_rows,
    "Node": _node_rows,
    "Namespace": _ns_rows,
}
