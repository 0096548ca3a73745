"""The CNI contract, sans-I/O: environment + stdin in, a request or a coded error out."""

from __future__ import annotations

import json

import pytest

from node_agent.cni import cgroup, protocol, wire
from node_agent.cni.protocol import CniError, Code

PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/cni-1"}],
    "ips": [
        {"address": "198.19.200.2/24", "gateway": "198.19.200.1", "interface": 0},
        {"address": "2001:db8::2/64", "interface": 0},
    ],
}
CONFIG = {
    "cniVersion": "1.0.0",
    "name": "k8s-pod-network",
    "type": "nodemesh-cni",
    "agentSocket": "/run/test.sock",
    "excludeNamespaces": ["kube-system"],
    "prevResult": PREV,
}
ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee",
    "CNI_NETNS": "/var/run/netns/cni-1",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=u-1",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
}


def stdin(config: dict = CONFIG) -> bytes:
    return json.dumps(config).encode()


def error_of(env: dict, data: bytes) -> CniError:
    with pytest.raises(CniError) as caught:
        protocol.parse(env, data)
    return caught.value


def test_an_add_is_parsed_into_a_typed_request():
    request = protocol.parse(ENV, stdin())
    assert (request.command, request.container_id, request.netns) == (
        "ADD",
        "c0ffee",
        "/var/run/netns/cni-1",
    )
    assert request.pod == protocol.PodRef("shop", "web-0", "u-1")
    assert request.path == ("/opt/cni/bin", "/usr/lib/cni")
    assert request.config.agent_socket == "/run/test.sock"
    assert request.config.exclude_namespaces == frozenset({"kube-system"})
    assert protocol.pod_ips(request.config.prev_result) == ("198.19.200.2", "2001:db8::2")


def test_defaults_fill_what_the_config_leaves_out():
    config = protocol.parse_config(b'{"cniVersion": "0.4.0", "name": "n", "prevResult": {}}')
    assert config.agent_socket == protocol.DEFAULT_AGENT_SOCKET
    assert "kube-system" in config.exclude_namespaces
    assert config.timeout == protocol.DEFAULT_TIMEOUT


def test_add_passes_the_previous_result_through_unchanged():
    request = protocol.parse(ENV, stdin())
    assert json.loads(protocol.add_result(request.config)) == PREV


def test_the_result_carries_the_configs_version():
    config = protocol.parse_config(stdin(CONFIG | {"cniVersion": "0.4.0"}))
    assert json.loads(protocol.add_result(config))["cniVersion"] == "0.4.0"


@pytest.mark.parametrize(
    ("env", "data", "code", "names"),
    [
        (ENV, b"{not json", Code.DECODE_FAILURE, "not JSON"),
        (ENV, b"[1, 2]", Code.DECODE_FAILURE, "not a JSON object"),
        (ENV, b"\xff\xfe", Code.DECODE_FAILURE, "not JSON"),
        (ENV, stdin(CONFIG | {"cniVersion": "0.2.0"}), Code.INCOMPATIBLE_VERSION, "0.2.0"),
        (ENV, stdin({k: v for k, v in CONFIG.items() if k != "cniVersion"}), 7, "cniVersion"),
        (ENV, stdin({k: v for k, v in CONFIG.items() if k != "name"}), 7, "'name'"),
        (ENV, stdin({k: v for k, v in CONFIG.items() if k != "prevResult"}), 7, "chained"),
        (ENV, stdin(CONFIG | {"agentSocket": 5}), Code.INVALID_CONFIG, "agentSocket"),
        (ENV, stdin(CONFIG | {"excludeNamespaces": "x"}), 7, "excludeNamespaces"),
        (ENV, stdin(CONFIG | {"timeoutSeconds": 0}), 7, "timeoutSeconds"),
        (ENV, stdin(CONFIG | {"prevResult": []}), Code.INVALID_CONFIG, "prevResult"),
        ({**ENV, "CNI_NETNS": ""}, stdin(), Code.INVALID_ENV, "CNI_NETNS"),
        ({k: v for k, v in ENV.items() if k != "CNI_IFNAME"}, stdin(), 4, "CNI_IFNAME"),
        ({**ENV, "CNI_COMMAND": "FROB"}, stdin(), Code.INVALID_ENV, "CNI_COMMAND"),
        ({**ENV, "CNI_COMMAND": ""}, stdin(), Code.INVALID_ENV, "CNI_COMMAND"),
        ({**ENV, "CNI_ARGS": "K8S_POD_NAME"}, stdin(), Code.INVALID_ENV, "KEY=VALUE"),
        ({**ENV, "CNI_COMMAND": "STATUS"}, stdin(), Code.INCOMPATIBLE_VERSION, "1.1.0"),
        ({**ENV, "CNI_COMMAND": "GC"}, stdin(), Code.INCOMPATIBLE_VERSION, "1.1.0"),
    ],
    ids=[
        "bad-json",
        "not-an-object",
        "not-utf8",
        "old-version",
        "no-version",
        "no-name",
        "add-not-chained",
        "socket-not-text",
        "exclude-not-list",
        "timeout-zero",
        "prev-result-not-object",
        "no-netns",
        "no-ifname",
        "unknown-command",
        "no-command",
        "bad-args",
        "status-needs-1.1",
        "gc-needs-1.1",
    ],
)
def test_malformed_input_is_a_coded_error_naming_the_fix(env, data, code, names):
    error = error_of(env, data)
    assert error.code == code
    assert names in error.msg + error.details
    answer = json.loads(protocol.error_result(error))
    assert set(answer) == {"cniVersion", "code", "msg", "details"}
    assert answer["code"] == code


def test_an_error_answer_keeps_the_requests_version_when_it_is_known():
    error = error_of({**ENV, "CNI_NETNS": ""}, stdin(CONFIG | {"cniVersion": "0.4.0"}))
    assert json.loads(protocol.error_result(error))["cniVersion"] == "0.4.0"


def test_del_does_not_need_a_netns():
    env = {**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}
    request = protocol.parse(env, stdin({k: v for k, v in CONFIG.items() if k != "prevResult"}))
    assert request.command == "DEL" and request.netns == ""


def test_version_answers_whatever_stdin_holds():
    request = protocol.parse({"CNI_COMMAND": "VERSION"}, b"garbage")
    answer = json.loads(protocol.version_result(request.version))
    assert "1.0.0" in answer["supportedVersions"]
    assert answer["cniVersion"] == "1.0.0"


def test_status_and_gc_parse_with_version_1_1():
    config = CONFIG | {
        "cniVersion": "1.1.0",
        "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
    }
    request = protocol.parse({"CNI_COMMAND": "GC"}, stdin(config))
    assert request.config.valid_attachments == ("a",)
    assert protocol.parse({"CNI_COMMAND": "STATUS"}, stdin(config)).command == "STATUS"


def test_a_sandbox_without_kubernetes_args_names_no_pod():
    request = protocol.parse({**ENV, "CNI_ARGS": "IgnoreUnknown=1"}, stdin())
    assert request.pod is None


# --- wire -----------------------------------------------------------------------------------------

POD = wire.PodInfo(
    "shop", "web-0", "u-1", "c0ffee", "/var/run/netns/x", "eth0", ("1.2.3.4",), "/cg"
)


def test_a_request_survives_the_wire_fed_one_byte_at_a_time():
    data = wire.frame(wire.Request("add", POD).to_json())
    reader, messages = wire.FrameReader(), []
    for i in range(len(data)):
        messages += reader.receive_data(data[i : i + 1])
    assert [wire.Request.from_json(m) for m in messages] == [wire.Request("add", POD)]


def test_two_frames_in_one_read_are_two_messages():
    data = wire.frame(wire.Reply(True, msg="a").to_json()) + wire.frame({"ok": False, "code": 11})
    replies = [wire.Reply.from_json(m) for m in wire.FrameReader().receive_data(data)]
    assert [(r.ok, r.code, r.msg) for r in replies] == [(True, 0, "a"), (False, 11, "")]


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ({"op": "frob"}, "op"),
        ({"op": "add"}, "'pod' must be an object"),
        ({"op": "add", "pod": {"namespace": "a", "name": "b"}}, "containerId"),
        ({"op": "add", "pod": POD.to_json() | {"ips": "1.2.3.4"}}, "pod.ips"),
        ({"op": "add", "pod": POD.to_json() | {"netns": 3}}, "pod.netns"),
        ({"op": "gc", "validContainerIds": "a"}, "validContainerIds"),
    ],
)
def test_a_malformed_request_is_a_wire_error(message, names):
    with pytest.raises(wire.WireError, match=names):
        wire.Request.from_json(message)


def test_an_oversized_frame_is_refused_from_its_header():
    with pytest.raises(wire.WireError, match="limit"):
        wire.FrameReader().receive_data(wire.HEADER.pack(wire.MAX_FRAME + 1))


def test_a_frame_that_is_not_a_json_object_is_a_wire_error():
    body = b"[1]"
    with pytest.raises(wire.WireError, match="one JSON object"):
        wire.FrameReader().receive_data(wire.HEADER.pack(len(body)) + body)


# --- cgroup paths ---------------------------------------------------------------------------------

UID = "5f0c3a1e-aaaa-bbbb-cccc-0123456789ab"
SYSTEMD = (
    "/kubepods.slice/kubepods-besteffort.slice/"
    f"kubepods-besteffort-pod{UID.replace('-', '_')}.slice/cri-containerd-abc.scope"
)


@pytest.mark.parametrize(
    ("process", "pod"),
    [
        (SYSTEMD, SYSTEMD.rsplit("/", 1)[0]),
        (f"/kubepods/burstable/pod{UID}/abc123", f"/kubepods/burstable/pod{UID}"),
        (f"/kubepods/pod{UID}/abc123", f"/kubepods/pod{UID}"),
        ("/nodemesh-t1/pods/web", "/nodemesh-t1/pods/web"),  # no uid in the path: its own
        ("/kubepods/burstable/podOTHER/abc", "/kubepods/burstable/podOTHER/abc"),
    ],
    ids=["systemd", "cgroupfs", "cgroupfs-guaranteed", "no-uid", "another-pod"],
)
def test_the_pod_cgroup_is_the_ancestor_naming_the_uid(process, pod):
    assert cgroup.pod_cgroup_in(process, UID) == pod


def test_proc_cgroup_gives_the_v2_path_on_hybrid_hosts_too():
    text = "12:cpu,cpuacct:/kubepods/x\n1:name=systemd:/kubepods/x\n0::/kubepods/pod1/abc\n"
    assert cgroup.parse_proc_cgroup(text) == "/kubepods/pod1/abc"
    assert cgroup.parse_proc_cgroup("1:name=systemd:/x\n") == ""


def test_the_cgroup2_mount_is_read_from_proc_mounts():
    mounts = (
        "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    )
    assert str(cgroup.cgroup2_mount(mounts)) == "/sys/fs/cgroup/unified"
    assert cgroup.cgroup2_mount("proc /proc proc rw 0 0\n") is None


def test_a_pod_cgroup_is_found_by_uid_below_the_kubepods_roots(tmp_path):
    pod_dir = tmp_path / "kubepods.slice" / "kubepods-burstable.slice"
    pod_dir = pod_dir / f"kubepods-burstable-pod{UID.replace('-', '_')}.slice"
    (pod_dir / "cri-containerd-1.scope").mkdir(parents=True)
    (tmp_path / "kubepods.slice" / "kubepods-besteffort.slice").mkdir()
    assert cgroup.find_by_uid(tmp_path, UID, cgroup.DEFAULT_ROOTS) == pod_dir
    assert cgroup.find_by_uid(tmp_path, "other-uid", cgroup.DEFAULT_ROOTS) is None
    assert cgroup.find_by_uid(tmp_path, "", cgroup.DEFAULT_ROOTS) is None
