"""apps/v1 Deployment: replicas of a pod template, replaced by rolling update or recreate."""

from __future__ import annotations

import re
from typing import Any

from nodemesh.manifests.check import Check, child, set_default
from nodemesh.manifests.validate_meta import (
    validate_label_selector,
    validate_template_metadata,
)
from nodemesh.manifests.validate_pod import normalize_pod_spec, validate_pod_spec

DEPLOYMENT_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
DEPLOYMENT_SPEC_FIELDS = frozenset(
    {"replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit"}
)
POD_TEMPLATE_FIELDS = frozenset({"metadata", "spec"})
STRATEGY_FIELDS = frozenset({"type", "rollingUpdate"})
ROLLING_UPDATE_FIELDS = frozenset({"maxSurge", "maxUnavailable"})

USED_FIELDS = {
    "Deployment": DEPLOYMENT_FIELDS,
    "DeploymentSpec": DEPLOYMENT_SPEC_FIELDS,
    "PodTemplateSpec": POD_TEMPLATE_FIELDS,
    "DeploymentStrategy": STRATEGY_FIELDS,
    "RollingUpdateDeployment": ROLLING_UPDATE_FIELDS,
}

STRATEGY_TYPES = ("RollingUpdate", "Recreate")
_PERCENT = re.compile(r"[0-9]+%")


def validate_deployment(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "Deployment", DEPLOYMENT_FIELDS)
    spec = check.mapping(obj, "spec", path, required=True)
    if spec is None:
        return
    path = child(path, "spec")
    check.fields(spec, path, "DeploymentSpec", DEPLOYMENT_SPEC_FIELDS)
    check.integer(spec, "replicas", path, low=0)
    check.integer(spec, "minReadySeconds", path, low=0)
    check.integer(spec, "revisionHistoryLimit", path, low=0)
    selector = validate_label_selector(spec, "selector", path, check, required=True)
    template = check.mapping(spec, "template", path, required=True)
    if template is not None:
        _validate_template(template, child(path, "template"), check, selector)
    _validate_strategy(spec, path, check)


def normalize_deployment(obj: dict[str, Any]) -> None:
    spec = obj["spec"]
    set_default(spec, "replicas", 1)
    set_default(spec, "minReadySeconds", 0)
    set_default(spec, "revisionHistoryLimit", 10)
    set_default(spec, "strategy", {})
    strategy = spec["strategy"]
    set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        set_default(strategy, "rollingUpdate", {})
        set_default(strategy["rollingUpdate"], "maxSurge", "25%")
        set_default(strategy["rollingUpdate"], "maxUnavailable", "25%")
    template = spec["template"]
    set_default(template, "metadata", {})
    set_default(template["metadata"], "labels", {})
    normalize_pod_spec(template["spec"])


def _validate_template(
    template: dict[str, Any], path: str, check: Check, selector: dict[str, str] | None
) -> None:
    check.fields(template, path, "PodTemplateSpec", POD_TEMPLATE_FIELDS)
    meta = check.mapping(template, "metadata", path, required=True)
    if meta is not None:
        validate_template_metadata(meta, child(path, "metadata"), check)
        labels = meta.get("labels") or {}
        if selector and isinstance(labels, dict) and not _selects(selector, labels):
            check.fail(
                child(child(path, "metadata"), "labels"),
                f"must include the selector's matchLabels {selector}, or the Deployment would "
                "never find its own pods",
            )
    spec = check.mapping(template, "spec", path, required=True)
    if spec is None:
        return
    spec_path = child(path, "spec")
    validate_pod_spec(spec, spec_path, check)
    policy = spec.get("restartPolicy")
    if isinstance(policy, str) and policy != "Always":
        message = f"must be Always in a Deployment's pod template, got {policy!r}"
        check.fail(child(spec_path, "restartPolicy"), message)


def _selects(selector: dict[str, str], labels: dict[Any, Any]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _validate_strategy(spec: dict[str, Any], path: str, check: Check) -> None:
    strategy = check.mapping(spec, "strategy", path)
    if strategy is None:
        return
    path = child(path, "strategy")
    check.fields(strategy, path, "DeploymentStrategy", STRATEGY_FIELDS)
    kind = check.choice(strategy, "type", path, STRATEGY_TYPES) or "RollingUpdate"
    rolling = check.mapping(strategy, "rollingUpdate", path)
    if rolling is None:
        return
    path = child(path, "rollingUpdate")
    if kind == "Recreate":
        check.fail(path, "may not be set when strategy.type is Recreate")
        return
    check.fields(rolling, path, "RollingUpdateDeployment", ROLLING_UPDATE_FIELDS)
    surge = _int_or_percent(rolling, "maxSurge", path, check)
    unavailable = _int_or_percent(rolling, "maxUnavailable", path, check)
    if isinstance(unavailable, str) and int(unavailable[:-1]) > 100:
        check.fail(child(path, "maxUnavailable"), f"must not be more than 100%, got {unavailable}")
    if _is_zero(surge) and _is_zero(unavailable):
        check.fail(
            child(path, "maxUnavailable"),
            "may not be 0 when maxSurge is 0: the rollout could never make progress",
        )


def _int_or_percent(rolling: dict[str, Any], key: str, path: str, check: Check) -> int | str | None:
    if rolling.get(key) is None:
        return None
    return check.int_or_string(rolling[key], child(path, key), low=0, rule=_percent)


def _percent(value: str) -> str | None:
    if _PERCENT.fullmatch(value):
        return None
    return f"must be an integer or a percentage like '25%', got {value!r}"


def _is_zero(value: int | str | None) -> bool:
    return value in (0, "0%")
