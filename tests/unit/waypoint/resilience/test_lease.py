"""Lease: released once, whatever the exit path."""

from __future__ import annotations

import pytest

from waypoint.resilience.lease import Lease


def test_release_runs_once():
    calls = []
    lease = Lease(lambda: calls.append(1))

    lease.release()
    lease.release()

    assert calls == [1]
    assert not lease.held


def test_context_manager_releases_on_error():
    calls = []

    with pytest.raises(RuntimeError), Lease(lambda: calls.append(1)) as lease:
        assert lease.held
        raise RuntimeError("boom")

    assert calls == [1]
