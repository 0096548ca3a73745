"""The CNI contract, sans-I/O: environment + stdin bytes in, a typed request out; results to bytes.

Follows the CNI specification 1.0 (https://www.cni.dev/docs/spec/) and answers 1.1's STATUS and
GC: the runtime passes the operation in CNI_COMMAND and its parameters in CNI_* variables, the
network configuration as JSON on stdin. Success is exit 0 with the result (if any) on stdout;
failure is a non-zero exit with `{"cniVersion", "code", "msg", "details"}` on stdout, where the
code tells the runtime what to do (11: retry later; others: give up and report).

Nothing here reads the environment or stdin itself (node_agent.cni.plugin does), so every rule is
a unit test: `parse(env, stdin)` either returns a `CniRequest` or raises `CniError` carrying the
spec's code and a message that names the variable or field to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The versions whose configuration and result formats we read and write. Our result is always the
# previous plugin's, passed through, so every version with `prevResult` chaining (0.3.0+) works.
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_VERSION = "1.0.0"  # of our error answers, when the request's own is unknown or bad
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
_NEEDS_1_1 = ("STATUS", "GC")  # commands CNI 1.1 added
# Which variables each command needs (spec section "Parameters"); DEL tolerates a missing netns.
_REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "VERSION": (),
    "STATUS": (),
    "GC": (),
}

DEFAULT_AGENT_SOCKET = "/var/run/nodemesh/cni.sock"
DEFAULT_TIMEOUT = 15.0  # seconds an ADD waits for the agent; it gives up (code 11) at ~10 s
# Pods of these namespaces are never asked about: the agent's own (it must start before it can
# answer) and the system's (the cluster must come up with the mesh down).
DEFAULT_EXCLUDED = frozenset({"kube-system", "nodemesh-system"})


class Code:
    """The spec's well-known error codes, and ours (100 and up)."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENV = 4
    IO_FAILURE = 5
    DECODE_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    PLUGIN_NOT_AVAILABLE = 50  # STATUS: not ready to serve ADD
    AGENT_REFUSED = 100  # the agent could not put capture in place (its message says why)
    NOT_CAPTURED = 101  # CHECK: the pod is enrolled but capture is not in place
    NO_CGROUP = 102  # ADD: the pod's cgroup could not be found


class CniError(Exception):
    """A failure to report to the runtime as CNI error JSON (and a non-zero exit)."""

    def __init__(self, code: int, msg: str, details: str = "", version: str = "") -> None:
        super().__init__(msg)
        self.code = code  # the spec's code: what the runtime does next
        self.msg = msg  # one line: what went wrong
        self.details = details  # what to check or change
        self.version = version or DEFAULT_VERSION  # cniVersion of the answer


@dataclass(frozen=True)
class NetConf:
    """The network configuration (stdin): the spec's keys plus ours."""

    cni_version: str
    name: str
    prev_result: dict | None  # the previous plugin's result: we are chained, we pass it on
    agent_socket: str = DEFAULT_AGENT_SOCKET  # "agentSocket": the node agent's CNI socket
    exclude_namespaces: frozenset[str] = DEFAULT_EXCLUDED  # "excludeNamespaces"
    log_file: str = ""  # "logFile": where the plugin appends one line per call ("" = nowhere)
    timeout: float = DEFAULT_TIMEOUT  # "timeoutSeconds": how long a call waits for the agent
    cgroup_roots: tuple[str, ...] = ()  # "podCgroupRoots": where to look for a pod's cgroup
    valid_attachments: tuple[str, ...] = ()  # GC: "cni.dev/valid-attachments" container ids


@dataclass(frozen=True)
class PodRef:
    """Who the sandbox is: from CNI_ARGS, which Kubernetes runtimes fill in."""

    namespace: str  # K8S_POD_NAMESPACE
    name: str  # K8S_POD_NAME
    uid: str  # K8S_POD_UID ("" with runtimes that do not pass it; the agent then matches by name)


@dataclass(frozen=True)
class CniRequest:
    command: str  # one of COMMANDS
    container_id: str  # CNI_CONTAINERID: the sandbox
    netns: str  # CNI_NETNS: path of the sandbox's network namespace ("" on some DELs)
    ifname: str  # CNI_IFNAME
    args: dict[str, str] = field(default_factory=dict)  # CNI_ARGS, parsed
    path: tuple[str, ...] = ()  # CNI_PATH
    config: NetConf | None = None  # None only for VERSION with no usable stdin

    @property
    def pod(self) -> PodRef | None:
        """The Kubernetes pod, or None when the runtime named none (not a Kubernetes sandbox)."""
        namespace, name = self.args.get("K8S_POD_NAMESPACE", ""), self.args.get("K8S_POD_NAME", "")
        if not namespace or not name:
            return None
        return PodRef(namespace, name, self.args.get("K8S_POD_UID", ""))

    @property
    def version(self) -> str:
        return self.config.cni_version if self.config else DEFAULT_VERSION


def parse(env: dict[str, str], stdin: bytes) -> CniRequest:
    """The request the runtime made; raises CniError with the spec's code when it is malformed."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(
            Code.INVALID_ENV,
            f"CNI_COMMAND is {command!r}",
            f"set CNI_COMMAND to one of {', '.join(COMMANDS)}",
        )
    if command == "VERSION":
        return CniRequest("VERSION", "", "", "", config=_version_config(stdin))
    config = parse_config(stdin)
    if command in _NEEDS_1_1 and _version_key(config.cni_version) < (1, 1, 0):
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            f"{command} needs cniVersion 1.1.0 or later, the configuration says "
            f"{config.cni_version}",
            version=config.cni_version,
        )
    missing = [name for name in _REQUIRED_ENV[command] if not env.get(name)]
    if missing:
        raise CniError(
            Code.INVALID_ENV,
            f"{command} needs {', '.join(missing)}, which the runtime did not set",
            version=config.cni_version,
        )
    if command == "ADD" and config.prev_result is None:
        raise CniError(
            Code.INVALID_CONFIG,
            "ADD has no prevResult: nodemesh-cni is a chained plugin",
            "list it after the cluster's interface plugin in the conflist's plugins",
            config.cni_version,
        )
    return CniRequest(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=parse_args(env.get("CNI_ARGS", ""), config.cni_version),
        path=tuple(p for p in env.get("CNI_PATH", "").split(":") if p),
        config=config,
    )


def parse_args(text: str, version: str = DEFAULT_VERSION) -> dict[str, str]:
    """CNI_ARGS: "K1=V1;K2=V2" (the runtime's extra arguments, e.g. K8S_POD_NAME)."""
    args = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CniError(
                Code.INVALID_ENV,
                f"CNI_ARGS item {item!r} is not KEY=VALUE",
                "CNI_ARGS is a ';'-separated list of KEY=VALUE pairs",
                version,
            )
        args[key] = value
    return args


def parse_config(stdin: bytes) -> NetConf:
    """The network configuration; 6 when it is not JSON, 7 or 1 when it is not one we take."""
    try:
        raw = json.loads(stdin)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CniError(
            Code.DECODE_FAILURE,
            f"the network configuration on stdin is not JSON: {exc}",
            "the runtime passes the plugin's entry of the conflist on stdin",
        ) from exc
    if not isinstance(raw, dict):
        raise CniError(Code.DECODE_FAILURE, "the network configuration is not a JSON object")
    version = raw.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(Code.INVALID_CONFIG, "cniVersion is missing from the network configuration")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            f"cniVersion {version} is not supported",
            f"supported: {', '.join(SUPPORTED_VERSIONS)}",
        )
    return NetConf(
        cni_version=version,
        name=_text(raw, "name", version, required=True),
        prev_result=_object(raw, "prevResult", version),
        agent_socket=_text(raw, "agentSocket", version) or DEFAULT_AGENT_SOCKET,
        exclude_namespaces=frozenset(_texts(raw, "excludeNamespaces", version, DEFAULT_EXCLUDED)),
        log_file=_text(raw, "logFile", version),
        timeout=_seconds(raw, "timeoutSeconds", version),
        cgroup_roots=tuple(_texts(raw, "podCgroupRoots", version, ())),
        valid_attachments=_attachments(raw, version),
    )


def _version_config(stdin: bytes) -> NetConf | None:
    """VERSION is answered whatever stdin holds: it is how a runtime learns what we take."""
    try:
        return parse_config(stdin)
    except CniError:
        return None


def _text(raw: dict, key: str, version: str, required: bool = False) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise CniError(
            Code.INVALID_CONFIG, f"network configuration: {key!r} must be a non-empty string", "",
            version,
        )  # fmt: skip
    return value


def _texts(raw: dict, key: str, version: str, default) -> list[str]:
    value = raw.get(key)
    if value is None:
        return list(default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CniError(
            Code.INVALID_CONFIG, f"network configuration: {key!r} must be a list of strings", "",
            version,
        )  # fmt: skip
    return value


def _object(raw: dict, key: str, version: str) -> dict | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, dict):
        raise CniError(
            Code.INVALID_CONFIG, f"network configuration: {key!r} must be an object", "", version
        )
    return value


def _seconds(raw: dict, key: str, version: str) -> float:
    value = raw.get(key, DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 300:
        raise CniError(
            Code.INVALID_CONFIG, f"network configuration: {key!r} must be 0 < seconds <= 300", "",
            version,
        )  # fmt: skip
    return float(value)


def _attachments(raw: dict, version: str) -> tuple[str, ...]:
    listed = raw.get("cni.dev/valid-attachments") or []
    if not isinstance(listed, list):
        raise CniError(
            Code.INVALID_CONFIG, "'cni.dev/valid-attachments' must be a list", "", version
        )
    return tuple(a["containerID"] for a in listed if isinstance(a, dict) and "containerID" in a)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def pod_ips(prev_result: dict | None) -> tuple[str, ...]:
    """The pod's addresses from the previous plugin's result, without prefix lengths."""
    ips = (prev_result or {}).get("ips") or []
    found = []
    for entry in ips:
        address = entry.get("address") if isinstance(entry, dict) else None
        if isinstance(address, str) and address:
            found.append(address.split("/", 1)[0])
    return tuple(dict.fromkeys(found))


# --- answers --------------------------------------------------------------------------------------


def version_result(request_version: str = DEFAULT_VERSION) -> bytes:
    return _dump({"cniVersion": request_version, "supportedVersions": list(SUPPORTED_VERSIONS)})


def add_result(config: NetConf) -> bytes:
    """ADD's result: the previous plugin's, unchanged (we add no interface and no address)."""
    result: dict[str, Any] = dict(config.prev_result or {})
    result["cniVersion"] = config.cni_version
    return _dump(result)


def error_result(error: CniError) -> bytes:
    return _dump(
        {
            "cniVersion": error.version,
            "code": error.code,
            "msg": error.msg,
            "details": error.details,
        }
    )


def _dump(value: dict) -> bytes:
    return (json.dumps(value, indent=1) + "\n").encode()
