"""`meshctl exec` and `meshctl logs`: into a pod and out of it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.local import cluster
from nodemesh.local.launch import launch_argv


def find_pod(ctx: Ctx, name: str, namespace: str) -> dict:
    with user_errors():
        status = cluster.read_status(ctx.state)
    for pod in status["pods"]:
        meta = pod["metadata"]
        if meta["name"] == name and meta["namespace"] == namespace and "sandbox" in pod:
            return pod
    raise click.ClickException(
        f"pod {name!r} not found in namespace {namespace!r}; see 'meshctl get pods -n {namespace}'"
    )


def pick_container(pod: dict, container: str | None) -> str:
    names = [c["name"] for c in pod["spec"]["containers"]]
    if container is None:
        return names[0]
    if container not in names:
        raise click.ClickException(
            f"container {container!r} is not in pod {pod['metadata']['name']}; "
            f"it has: {', '.join(names)}"
        )
    return container


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def exec_(ctx: Ctx, pod: str, namespace: str, container: str | None, command) -> None:
    """Run COMMAND inside POD's network namespace and cgroup; exits with its exit code."""
    found = find_pod(ctx, pod, namespace)
    name = pick_container(found, container)
    sandbox = found["sandbox"]
    argv = launch_argv(
        sys.executable,
        sandbox["netns"],
        list(command),
        cgroup=str(Path(sandbox["cgroup"]) / name),
        hostname=pod,
    )
    sys.stdout.flush()
    os.execv(argv[0], argv)


@click.command("logs")
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("--tail", type=int, default=-1, help="Lines from the end (-1: all).")
@pass_ctx
def logs(
    ctx: Ctx, pod: str, namespace: str, container: str | None, follow: bool, tail: int
) -> None:
    """Print a container's output (stdout and stderr, across restarts)."""
    found = find_pod(ctx, pod, namespace)
    path = Path(found["sandbox"]["logDir"]) / f"{pick_container(found, container)}.log"
    if not path.exists():
        return
    with open(path, "rb") as fh:
        data = fh.read()
        lines = data.splitlines(keepends=True)
        out = sys.stdout.buffer
        out.write(b"".join(lines[-tail:] if tail >= 0 else lines))
        out.flush()
        while follow:
            chunk = fh.read()
            if chunk:
                out.write(chunk)
                out.flush()
            else:
                time.sleep(0.2)
