"""`meshctl install` and `meshctl uninstall`: nodemesh on a Kubernetes cluster.

Thin commands over nodemesh.install: values from --set, objects from render, requests from the
apply/delete planners; the only I/O is the ApiClient that sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click

from nodemesh.cli.kube import kube_options
from nodemesh.cli.kube import load_api as _api  # one name, so tests can replace it
from nodemesh.install import apply as kube
from nodemesh.install import common
from nodemesh.install.dashboards import DashboardsMissing
from nodemesh.install.render import render, to_yaml
from nodemesh.install.values import Values, ValuesError, describe, with_overrides

_SET_HELP = "Override a value, e.g. --set image.tag=0.2.0 (repeatable; --list-values shows all)."


@contextmanager
def _install_errors() -> Iterator[None]:
    try:
        yield
    except (ValuesError, DashboardsMissing, kube.InstallError) as exc:
        raise click.ClickException(str(exc)) from exc


def _values(sets: tuple[str, ...]) -> Values:
    with _install_errors():
        return with_overrides(Values(), sets)


def _cluster_options(command):
    command = kube_options()(command)
    command = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)(
        command
    )
    return command


@click.command("install")
@_cluster_options
@click.option("--dry-run", is_flag=True, help="Print the objects instead of applying them.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
@click.option("--list-values", is_flag=True, help="List every --set key with its default.")
def install(
    sets: tuple[str, ...],
    kubeconfig: str | None,
    context: str | None,
    dry_run: bool,
    output: str,
    list_values: bool,
) -> None:
    """Install nodemesh on a Kubernetes cluster (CRDs, RBAC, controller, agent DaemonSet)."""
    values = _values(sets)
    if list_values:
        for spec in describe(values):
            choices = f" ({'|'.join(spec.choices)})" if spec.choices else ""
            shown = str(spec.default).lower() if spec.type == "bool" else spec.default
            click.echo(f"{spec.key}={shown}  [{spec.type}{choices}] {spec.help}")
        return
    with _install_errors():
        docs = render(values)
    if dry_run:
        if output == "json":
            click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}, indent=2))
        else:
            click.echo(to_yaml(docs), nl=False)
        return
    api = _api(kubeconfig, context)
    with _install_errors():
        kube.execute(api, kube.plan_apply(docs), click.echo)
        _ensure_ca(api, values)


def _ensure_ca(api, values: Values) -> None:
    namespace = values.namespace
    secret = kube.get(api, "Secret", namespace, common.CA_SECRET)
    bundle = kube.get(api, "ConfigMap", namespace, common.TRUST_BUNDLE)
    existing = None
    if secret is not None:
        import base64

        encoded = (secret.get("data") or {}).get(common.CA_BUNDLE_FILE)
        existing = base64.b64decode(encoded).decode() if encoded else None
    requests = kube.plan_ca(
        namespace,
        common.labels(values),
        secret_exists=secret is not None,
        bundle_exists=bundle is not None,
        existing_bundle_pem=existing,
        make_ca=lambda: kube.new_ca(values.trust_domain),
    )
    kube.execute(api, requests, click.echo)


@click.command("uninstall")
@_cluster_options
@click.option("--dry-run", is_flag=True, help="Print what would be deleted, delete nothing.")
@click.option(
    "--keep-crds", is_flag=True, help="Keep the CRDs, and so every nodemesh policy stored."
)
def uninstall(
    sets: tuple[str, ...],
    kubeconfig: str | None,
    context: str | None,
    dry_run: bool,
    keep_crds: bool,
) -> None:
    """Remove what `meshctl install` made; the namespace takes the CA Secret with it, and the
    CRDs (unless --keep-crds) take every AuthorizationPolicy, PeerAuthentication and
    TrafficPolicy with them."""
    values = _values(sets)
    with _install_errors():
        docs = render(values)
        if keep_crds:
            docs = [doc for doc in docs if doc["kind"] != "CustomResourceDefinition"]
        requests = kube.plan_delete(docs)
    if dry_run:
        for request in requests:
            click.echo(f"would delete {request.describe}")
        return
    api = _api(kubeconfig, context)
    with _install_errors():
        kube.execute(api, requests, click.echo)
