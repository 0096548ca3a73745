"""The rendered install runs: every nodemesh container's command line is accepted by that
component's real argument parser, and the ports its probes and Services name are ports the
component listens on with those arguments.

The documents are what `meshctl install --dry-run` prints (parsed back from its YAML), plus the
waypoint Deployment the controller writes. Kubernetes' own substitutions are applied first:
`$(VAR)` in args from the container's env, fieldRef env from made-up pod fields.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from controller import main as controller_main
from controller.auth_kube import AUDIENCE
from controller.waypoints_kube import BUNDLE_CONFIGMAP, BUNDLE_KEY
from node_agent import cni_install
from node_agent import main as agent_main
from node_agent.agent import AgentSettings
from node_agent.pod import HBONE_PORT as AGENT_HBONE_PORT
from nodemesh import logsetup
from nodemesh.cli.main import cli
from nodemesh.install.values import Values, with_overrides
from nodemesh.install.waypoint import waypoint_objects
from waypoint import app as waypoint_app
from waypoint import main as waypoint_main

FIELDS = {"spec.nodeName": "node-1", "status.podIP": "198.18.0.10"}
VALUE_SETS = {
    "defaults": (),
    "custom": (
        "namespace=mesh",
        "trustDomain=example.org",
        "logLevel=debug",
        "cni.enabled=false",
    ),
}
COMPONENTS = {"controller", "node_agent", "node_agent.cni_install", "waypoint"}


def rendered(sets: tuple[str, ...]) -> list[dict]:
    """What `meshctl install --dry-run` prints, and the waypoint the controller would write."""
    argv = ["install", "--dry-run"]
    for item in sets:
        argv += ["--set", item]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    values = with_overrides(Values(), list(sets))
    return docs + waypoint_objects(values, "demo", "waypoint")


def pods(docs: list[dict]):
    for doc in docs:
        template = (doc.get("spec") or {}).get("template")
        if doc["kind"] in ("Deployment", "DaemonSet") and template:
            yield doc, template["spec"]


def containers(pod: dict):
    yield from pod.get("initContainers") or []
    yield from pod["containers"]


def env_of(container: dict) -> dict[str, str]:
    out = {}
    for item in container.get("env") or []:
        if "value" in item:
            out[item["name"]] = item["value"]
        else:
            out[item["name"]] = FIELDS[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return out


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (an undefined name stays as written)."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), arg)


def component_of(container: dict) -> tuple[str, list[str]] | None:
    """("module", argv) for a `python3 -m <module>` container, else None (a shell step)."""
    command = container.get("command") or []
    if command[:2] != ["python3", "-m"]:
        return None
    env = env_of(container)
    argv = [expand(a, env) for a in [*command[3:], *(container.get("args") or [])]]
    return command[2], argv


def found(docs: list[dict]) -> list[tuple[dict, dict, dict, str, list[str]]]:
    out = []
    for doc, pod in pods(docs):
        for container in containers(pod):
            if (parsed := component_of(container)) is not None:
                out.append((doc, pod, container, *parsed))
    return out


def volume_at(pod: dict, container: dict, path: str) -> tuple[dict, str]:
    """The volume that serves file `path` in `container`, and the file's path inside it."""
    for mount in container.get("volumeMounts") or []:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            return volume, path.removeprefix(prefix)
    raise AssertionError(f"{container['name']}: nothing is mounted at {path}")


def assert_projected_token(pod: dict, container: dict, path: str) -> None:
    volume, inner = volume_at(pod, container, path)
    [source] = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == AUDIENCE and token["path"] == inner


def assert_trust_bundle(pod: dict, container: dict, path: str) -> None:
    volume, inner = volume_at(pod, container, path)
    assert volume["configMap"]["name"] == BUNDLE_CONFIGMAP and inner == BUNDLE_KEY


def port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container.get("ports") or [] if p["name"] == port]
    return number


def probed_ports(container: dict) -> set[int]:
    probes = ("readinessProbe", "livenessProbe", "startupProbe")
    return {
        port_number(container, container[p]["httpGet"]["port"]) for p in probes if p in container
    }


def with_credentials(args, tmp_path: Path, **paths: str):
    """`args` with each credential path read from a temporary copy instead (same names)."""
    for attr, content in paths.items():
        copy = tmp_path / attr
        copy.write_text(content)
        setattr(args, attr, copy)
    return args


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(params=sorted(VALUE_SETS), scope="module")
def docs(request) -> list[dict]:
    return rendered(VALUE_SETS[request.param])


def test_every_python_container_is_a_known_component(docs):
    modules = [module for *_, module, _ in found(docs)]
    assert set(modules) <= COMPONENTS, modules
    assert {"controller", "node_agent", "waypoint"} <= set(modules)


def test_the_log_level_every_container_gets_is_one_the_components_accept(docs):
    for *_, container, _, _ in found(docs):
        env = env_of(container)
        assert logsetup.LOG_LEVEL_ENV in env, container["name"]
        logsetup.level_from(env)  # raises LogLevelError on a value nodemesh refuses


def test_the_controller_accepts_its_args_and_listens_where_probes_and_service_point(docs):
    [(doc, _pod, container, _, argv)] = [f for f in found(docs) if f[3] == "controller"]
    args = controller_main.parse_args(argv)
    assert args.in_cluster and args.leader_elect
    listening = {args.mtls_port, args.bootstrap_port, args.metrics_port}
    assert probed_ports(container) <= {args.metrics_port}
    assert {p["containerPort"] for p in container["ports"]} <= listening
    [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"] == doc["metadata"]]
    for port in service["spec"]["ports"]:
        assert port_number(container, port["targetPort"]) in listening
    account = f"system:serviceaccount:{doc['metadata']['namespace']}:"
    assert args.agent_user.startswith(account)


def test_the_agent_accepts_its_args_in_kubernetes_mode(docs, tmp_path):
    [(doc, pod, container, _, argv)] = [f for f in found(docs) if f[3] == "node_agent"]
    args = agent_main.parse_args(argv)
    assert args.local_state is None and args.node == FIELDS["spec.nodeName"]
    assert_projected_token(pod, container, str(args.token_file))
    assert_trust_bundle(pod, container, str(args.bundle))
    controller = next(f for f in found(docs) if f[3] == "controller")
    ctl_args = controller_main.parse_args(controller[4])
    namespace = doc["metadata"]["namespace"]
    assert ctl_args.agent_user == f"system:serviceaccount:{namespace}:{pod['serviceAccountName']}"
    assert ctl_args.trust_domain == args.trust_domain
    assert args.controller == f"{controller[0]['metadata']['name']}.{namespace}.svc"

    settings: AgentSettings = agent_main.settings_from(
        with_credentials(args, tmp_path, token_file="projected-token\n", bundle="PEM")
    )
    assert settings.token == "projected-token" and settings.bundle_pem == b"PEM"
    listening = {settings.metrics_port, AGENT_HBONE_PORT}
    assert probed_ports(container) <= {settings.metrics_port}
    assert {p["containerPort"] for p in container["ports"]} <= listening
    # Pins, the CNI socket and the sandboxes sit on the host paths the DaemonSet mounts.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert posixpath.dirname(settings.pin_root) == settings.bpffs_mount
    assert mounts[settings.bpffs_mount] == "bpffs"
    run_dir = posixpath.dirname(settings.cni_socket)
    assert posixpath.dirname(settings.sandbox_state) == run_dir and mounts[run_dir] == "run"


def test_the_agent_rereads_a_rotated_token(docs, tmp_path):
    [(*_, argv)] = [f for f in found(docs) if f[3] == "node_agent"]
    args = with_credentials(agent_main.parse_args(argv), tmp_path, token_file="first", bundle="PEM")
    assert agent_main.settings_from(args).token == "first"
    args.token_file.write_text("rotated")
    assert agent_main.settings_from(args).token == "rotated"


def test_the_cni_installer_accepts_its_args_and_names_the_agents_socket(docs):
    installers = [f for f in found(docs) if f[3] == "node_agent.cni_install"]
    if not installers:
        pytest.skip("cni.enabled=false renders no installer")
    [(_, _, _, _, argv)] = installers
    args = cni_install.parse_args(argv)
    [(*_, agent_argv)] = [f for f in found(docs) if f[3] == "node_agent"]
    agent_args = agent_main.parse_args(agent_argv)
    assert args.agent_socket == agent_args.cni_socket
    assert args.watch


def test_the_waypoint_accepts_its_args_and_listens_where_its_probe_points(
    docs, tmp_path, monkeypatch
):
    [(_doc, pod, container, _, argv)] = [f for f in found(docs) if f[3] == "waypoint"]
    for name, value in env_of(container).items():
        monkeypatch.setenv(name, value)
    args = waypoint_main.parse_args(argv)
    assert args.pod_ip == FIELDS["status.podIP"]
    assert_projected_token(pod, container, args.token_file)
    assert_trust_bundle(pod, container, str(args.bundle))
    controller = next(f for f in found(docs) if f[3] == "controller")
    assert args.trust_domain == controller_main.parse_args(controller[4]).trust_domain

    settings = waypoint_main.settings_from(with_credentials(args, tmp_path, bundle="PEM"))
    listening = {settings.metrics_port, settings.health_port, waypoint_app.HBONE_PORT}
    assert probed_ports(container) <= listening
    assert {p["containerPort"] for p in container["ports"]} <= listening


def test_a_bad_log_level_is_refused_by_name():
    with pytest.raises(logsetup.LogLevelError, match="NODEMESH_LOG_LEVEL='verbose'"):
        logsetup.level_from({logsetup.LOG_LEVEL_ENV: "verbose"})
    assert logsetup.level_from({}) == logsetup.level_from({logsetup.LOG_LEVEL_ENV: "info"})


def test_the_agent_refuses_half_a_kubernetes_mode():
    with pytest.raises(SystemExit):
        agent_main.parse_args(["--node=n", "--controller=c", "--token-file=/t"])
    with pytest.raises(SystemExit):
        agent_main.parse_args(["--node=n", "--controller=c", "--local-state=/s", "--bundle=/b"])
