"""Shared fixtures; the tiers are described in tests/README.md."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="namespaced test: needs root to create network namespaces")
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(skip)
