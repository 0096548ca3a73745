"""apps/v1 Deployment: selector/template agreement, rollout strategy, and the embedded pod spec."""

from __future__ import annotations

import pytest

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web", "version": "v1"}},
            "spec": {"containers": [{"name": "app", "command": ["./web"]}]},
        },
    },
}
T = "spec.template"


def test_valid_deployment_is_normalized(normalized):
    obj = normalized(DEPLOYMENT)

    spec = obj["spec"]
    assert obj["metadata"]["namespace"] == "shop"
    assert spec["replicas"] == 1
    assert spec["minReadySeconds"] == 0
    assert spec["revisionHistoryLimit"] == 10
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["serviceAccountName"] == "default"


def test_recreate_strategy_gets_no_rolling_update_defaults(check_case, normalized):
    from_case = {"type": "Recreate"}
    assert check_case(DEPLOYMENT, "spec.strategy", from_case) == []

    obj = normalized({**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "strategy": from_case}})

    assert obj["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.replicas", 0),
        ("spec.replicas", 3),
        ("spec.strategy", {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        ("spec.strategy", {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "0%"}}),
        ("spec.minReadySeconds", 5),
        ("spec.revisionHistoryLimit", 2),
        ("spec.progressDeadlineSeconds", 600),  # accepted, ignored
        ("spec.paused", False),
        (f"{T}.metadata.annotations", {"prometheus.io/scrape": "true"}),
    ],
)
def test_accepted_variations(check_case, path, value):
    assert check_case(DEPLOYMENT, path, value) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("spec.replicas", -1, "spec.replicas", "must be at least 0, got -1"),
        ("spec.replicas", "3", "spec.replicas", "must be an integer, got string '3'"),
        ("spec.selector", None, "spec.selector", "required field is missing"),
        ("spec.selector.matchLabels", {}, "spec.selector.matchLabels", "must not be empty"),
        (
            "spec.selector",
            {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "spec.selector.matchExpressions",
            "not supported in local mode; use matchLabels",
        ),
        (
            "spec.selector.matchLabels.app",
            "api",
            f"{T}.metadata.labels",
            "must include the selector's matchLabels {'app': 'api'}, or the Deployment would "
            "never find its own pods",
        ),
        ("spec.template", None, "spec.template", "required field is missing"),
        (
            f"{T}.spec.containers[0].command",
            None,
            f"{T}.spec.containers[0].command",
            "command or args is required: local mode runs the process from the host filesystem "
            "and ignores image, so there is no image entrypoint to fall back on",
        ),
        (
            f"{T}.spec.containers[0].imagePullPolcy",
            "Always",
            f"{T}.spec.containers[0].imagePullPolcy",
            "unknown field; did you mean 'imagePullPolicy'?",
        ),
        (
            f"{T}.spec.restartPolicy",
            "Never",
            f"{T}.spec.restartPolicy",
            "must be Always in a Deployment's pod template, got 'Never'",
        ),
        (
            f"{T}.metadata.labels.version",
            "v1.0!",
            f"{T}.metadata.labels.version",
            "label value must be empty or at most 63 characters of letters, digits, '-', '_', '.', "
            "starting and ending with a letter or digit, got 'v1.0!'",
        ),
        (
            "spec.strategy.type",
            "BlueGreen",
            "spec.strategy.type",
            "must be one of RollingUpdate, Recreate, got 'BlueGreen'",
        ),
        (
            "spec.strategy",
            {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
            "spec.strategy.rollingUpdate",
            "may not be set when strategy.type is Recreate",
        ),
        (
            "spec.strategy.rollingUpdate.maxSurge",
            "25",
            "spec.strategy.rollingUpdate.maxSurge",
            "must be an integer or a percentage like '25%', got '25'",
        ),
        (
            "spec.strategy.rollingUpdate.maxUnavailable",
            "150%",
            "spec.strategy.rollingUpdate.maxUnavailable",
            "must not be more than 100%, got 150%",
        ),
        (
            "spec.strategy.rollingUpdate",
            {"maxSurge": 0, "maxUnavailable": "0%"},
            "spec.strategy.rollingUpdate.maxUnavailable",
            "may not be 0 when maxSurge is 0: the rollout could never make progress",
        ),
    ],
)
def test_deployment_errors(check_case, path, value, field, message):
    assert check_case(DEPLOYMENT, path, value) == [(field, message)]
