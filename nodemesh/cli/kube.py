"""What every `meshctl` command that talks to a Kubernetes cluster shares: the options naming the
cluster (`--kubeconfig`, `--context`) and the API client they load.

One place, so `meshctl install` and `meshctl trace --kubeconfig` find a cluster the same way and
fail with the same one-line hint when they cannot.
"""

from __future__ import annotations

import click


def load_api(kubeconfig: str | None, context: str | None):
    """An ApiClient for the kubeconfig and context, or in-cluster credentials in a pod."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, FileNotFoundError, TypeError) as first:
        if kubeconfig or context:
            raise click.ClickException(f"cannot load kubeconfig: {first}") from first
        try:
            config.load_incluster_config()
        except ConfigException as second:
            raise click.ClickException(
                f"no cluster to talk to: {first}; pass --kubeconfig (and --context) or run in a pod"
            ) from second
        from kubernetes import client

        return client.ApiClient()


def kube_options(*, kubeconfig_env: bool = True):
    """Decorator adding `--kubeconfig` and `--context`.

    `kubeconfig_env=False` for commands where the options choose Kubernetes over the local
    cluster (`meshctl trace`): a KUBECONFIG exported for kubectl must not silently switch them."""

    def decorate(command):
        command = click.option("--context", help="kubeconfig context (default: current).")(command)
        if kubeconfig_env:
            return click.option(
                "--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file (env KUBECONFIG)."
            )(command)
        return click.option("--kubeconfig", help="kubeconfig file of a Kubernetes cluster.")(
            command
        )

    return decorate
