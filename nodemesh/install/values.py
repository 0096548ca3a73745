"""The install's values: one typed tree of settings, overridden with `--set key=value`.

Why a typed tree and not a free-form dict (Helm's way): every key the renderer reads is declared
here once, with its type, default and help text, so an unknown `--set` key is refused by name
instead of being silently ignored (a typo in `agent.resources.limits.memroy` would otherwise
install something other than what was asked), and a value of the wrong type is refused before any
manifest is built. `describe()` lists every key for the README and `meshctl install --help-values`.

Values are frozen dataclasses; `with_overrides` returns a new tree and never mutates one.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nodemesh import logsetup
from nodemesh.manifests import names

LOG_LEVELS = logsetup.LOG_LEVELS  # what the components accept in NODEMESH_LOG_LEVEL
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# Kubernetes resource.Quantity syntax: a decimal number with an optional SI or binary suffix.
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_ABSOLUTE_PATH = re.compile(r"/[^\0]*")


class ValuesError(ValueError):
    """A `--set` the installer cannot use; the message names the key and what to write."""


def _help(text: str, choices: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"help": text, "choices": choices}


@dataclass(frozen=True)
class Resources:
    """A container's requests and limits (Kubernetes quantities); "" leaves one unset."""

    cpu_request: str = field(default="100m", metadata=_help("CPU request"))
    memory_request: str = field(default="128Mi", metadata=_help("memory request"))
    cpu_limit: str = field(default="", metadata=_help("CPU limit ('' for none)"))
    memory_limit: str = field(default="512Mi", metadata=_help("memory limit ('' for none)"))

    def as_k8s(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for kind, cpu, memory in (
            ("requests", self.cpu_request, self.memory_request),
            ("limits", self.cpu_limit, self.memory_limit),
        ):
            chosen = {name: value for name, value in (("cpu", cpu), ("memory", memory)) if value}
            if chosen:
                out[kind] = chosen
        return out


@dataclass(frozen=True)
class Image:
    registry: str = field(default="ghcr.io/nodemesh", metadata=_help("image registry and path"))
    tag: str = field(default="0.1.0", metadata=_help("image tag of all three images"))
    pull_policy: str = field(
        default="IfNotPresent", metadata=_help("imagePullPolicy", PULL_POLICIES)
    )

    def of(self, component: str) -> str:
        return f"{self.registry}/{component}:{self.tag}"


@dataclass(frozen=True)
class Controller:
    replicas: int = field(default=2, metadata=_help("controller replicas (leader elected)"))
    resources: Resources = Resources()


@dataclass(frozen=True)
class Agent:
    termination_grace_period_seconds: int = field(
        default=300,
        metadata=_help("how long a stopping agent may drain its tunnels before SIGKILL"),
    )
    resources: Resources = Resources(cpu_request="200m", memory_request="256Mi", memory_limit="1Gi")


@dataclass(frozen=True)
class Cni:
    enabled: bool = field(default=True, metadata=_help("install the chained CNI plugin"))
    bin_dir: str = field(default="/opt/cni/bin", metadata=_help("host directory of CNI binaries"))
    conf_dir: str = field(
        default="/etc/cni/net.d", metadata=_help("host directory of CNI network configurations")
    )


@dataclass(frozen=True)
class Dashboards:
    enabled: bool = field(
        default=True, metadata=_help('Grafana dashboards as ConfigMaps (grafana_dashboard: "1")')
    )


@dataclass(frozen=True)
class Values:
    namespace: str = field(
        default="nodemesh-system", metadata=_help("namespace of the controller and agents")
    )
    trust_domain: str = field(
        default="cluster.local", metadata=_help("SPIFFE trust domain of every identity")
    )
    log_level: str = field(default="info", metadata=_help("components' log level", LOG_LEVELS))
    image: Image = Image()
    controller: Controller = Controller()
    agent: Agent = Agent()
    cni: Cni = Cni()
    dashboards: Dashboards = Dashboards()


@dataclass(frozen=True)
class ValueSpec:
    """One settable key, for `describe()` and the README."""

    key: str  # as written after --set, camelCase, dotted
    type: str  # "str", "int" or "bool"
    default: Any
    help: str
    choices: tuple[str, ...]


def camel(name: str) -> str:
    """`pull_policy` -> `pullPolicy`: keys are written as in Helm values and Kubernetes YAML."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def describe(values: Values | None = None) -> list[ValueSpec]:
    """Every settable key with its current value (the defaults when `values` is None)."""
    return list(_walk(values or Values(), ""))


def _walk(node: Any, prefix: str) -> Iterator[ValueSpec]:
    hints = typing.get_type_hints(type(node))
    for spec in dataclasses.fields(node):
        key = prefix + camel(spec.name)
        value = getattr(node, spec.name)
        if dataclasses.is_dataclass(value):
            yield from _walk(value, key + ".")
        else:
            meta = spec.metadata
            kind = hints[spec.name].__name__
            yield ValueSpec(key, kind, value, meta.get("help", ""), meta.get("choices", ()))


def parse_set(text: str) -> tuple[str, str]:
    """`key=value` as given to --set; the value may itself contain '='."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValuesError(f"--set {text!r}: write key=value, e.g. --set image.tag=0.2.0")
    return key.strip(), value


def with_overrides(values: Values, overrides: Iterable[str]) -> Values:
    """`values` with each `key=value` applied in order (a later --set of a key wins)."""
    for text in overrides:
        key, raw = parse_set(text)
        values = _replace(values, key.split("."), raw, key)
    _check(values)
    return values


def _replace(node: Any, parts: list[str], raw: str, key: str) -> Any:
    by_key = {camel(spec.name): spec for spec in dataclasses.fields(node)}
    spec = by_key.get(parts[0])
    if spec is None:
        known = ", ".join(sorted(spec.key for spec in describe()))
        raise ValuesError(f"--set {key}: unknown key {key!r}; known keys: {known}")
    current = getattr(node, spec.name)
    if dataclasses.is_dataclass(current):
        if len(parts) == 1:
            inner = ", ".join(spec.key for spec in _walk(current, key + "."))
            raise ValuesError(f"--set {key}: {key!r} is a group; set one of its keys: {inner}")
        return dataclasses.replace(node, **{spec.name: _replace(current, parts[1:], raw, key)})
    if len(parts) > 1:
        full = key.split(".")
        leaf = ".".join(full[: len(full) - len(parts) + 1])
        raise ValuesError(f"--set {key}: {leaf!r} is a value, not a group of keys")
    kind = typing.get_type_hints(type(node))[spec.name]
    value = _coerce(raw, kind, key)
    choices = spec.metadata.get("choices", ())
    if choices and value not in choices:
        raise ValuesError(f"--set {key}: must be one of {', '.join(choices)}, got {raw!r}")
    return dataclasses.replace(node, **{spec.name: value})


def _coerce(raw: str, kind: type, key: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            raise ValuesError(f"--set {key}: must be true or false, got {raw!r}")
        return lowered == "true"
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValuesError(f"--set {key}: must be an integer, got {raw!r}") from None
    return raw


def _check(values: Values) -> None:
    """Rules that span a value's syntax, so a bad value fails here and not at the API server."""
    problem = names.dns1123_label(values.namespace)
    if problem:
        raise ValuesError(f"--set namespace: {problem}")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9._]*[a-z0-9])?", values.trust_domain):
        raise ValuesError(
            f"--set trustDomain: must be lowercase letters, digits, '-', '.' and '_', "
            f"got {values.trust_domain!r}"
        )
    if values.controller.replicas < 1:
        raise ValuesError("--set controller.replicas: must be at least 1")
    if values.agent.termination_grace_period_seconds < 0:
        raise ValuesError("--set agent.terminationGracePeriodSeconds: must not be negative")
    for key, resources in (
        ("controller.resources", values.controller.resources),
        ("agent.resources", values.agent.resources),
    ):
        for spec in dataclasses.fields(resources):
            quantity = getattr(resources, spec.name)
            if quantity and not _QUANTITY.fullmatch(quantity):
                raise ValuesError(
                    f"--set {key}.{camel(spec.name)}: must be a Kubernetes quantity like 100m, "
                    f"0.5 or 256Mi, got {quantity!r}"
                )
    for key, path in (("cni.binDir", values.cni.bin_dir), ("cni.confDir", values.cni.conf_dir)):
        if not _ABSOLUTE_PATH.fullmatch(path):
            raise ValuesError(f"--set {key}: must be an absolute path, got {path!r}")
    if not values.image.registry or not values.image.tag:
        raise ValuesError("--set image.registry / image.tag: must not be empty")
