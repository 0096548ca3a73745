"""Fixtures every Kubernetes-mode test of this tier shares: the fake API server
(tests/inprocess/kube_fake.py) on loopback, and a `kubernetes` client pointed at it.

A module that needs more of the server (writable collections, recorded lists) overrides
`server` with a fixture of the same name that takes this one, so start and stop stay here:

    @pytest.fixture
    def server(server):
        server.writable("v1", "configmaps")
        return server
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.inprocess.kube_fake import FakeApiServer


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    """A started fake API server serving nothing yet; stopped (every thread joined) after."""
    fake = FakeApiServer().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def api(server: FakeApiServer) -> Iterator[client.ApiClient]:
    """A client of `server`, closed after the test (before the server stops)."""
    api = server.api_client()
    try:
        yield api
    finally:
        api.close()
