"""Typed errors of the resilience package.

There is one: configuration the waypoint was handed does not have the shape the manifest
validator guarantees. It is the controller's (or a test's) mistake, not the peer's, so it is raised
once at the config boundary and never while traffic flows.
"""

from __future__ import annotations


class ResilienceConfigError(ValueError):
    """A resilience setting is missing or malformed.

    Specs reach the waypoint after `nodemesh.manifests` validated and normalized them; seeing this
    means a spec skipped that step (or a caller built a primitive with impossible limits). The
    message names the field and the rule it breaks.
    """
