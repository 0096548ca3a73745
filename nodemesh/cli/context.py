"""What every meshctl command needs: which cluster, and errors turned into one-line exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import click

from nodemesh.local.addressing import AddressingError
from nodemesh.local.cluster import ClusterError
from nodemesh.local.netns import NetnsError
from nodemesh.local.state import StateDir
from nodemesh.manifests.errors import ManifestErrors


@dataclass
class Ctx:
    cluster: str

    @property
    def state(self) -> StateDir:
        return StateDir(self.cluster)


pass_ctx = click.make_pass_decorator(Ctx)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Known failures print what to fix and exit 1; anything else is a bug and shows a traceback."""
    try:
        yield
    except (ClusterError, AddressingError, NetnsError) as exc:
        raise click.ClickException(str(exc)) from exc
    except ManifestErrors as exc:
        raise click.ClickException(f"nothing was applied:\n{exc}") from exc
