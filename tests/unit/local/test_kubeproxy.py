"""Rendering and validation of the kube-proxy nftables table; no kernel, no subprocesses.

The rules are exercised against a real kernel in tests/netns/test_kubeproxy_netns.py.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.local import kubeproxy
from nodemesh.local.kubeproxy import (
    Endpoint,
    KubeProxyError,
    ServicePort,
    apply_ruleset,
    delete_ruleset,
    render_ruleset,
)

NFT_IDENTIFIER = re.compile(r"[A-Za-z_.][A-Za-z0-9/_.-]*")


def web(*ips: str, port: int = 80, port_name: str = "http", protocol: str = "TCP") -> ServicePort:
    endpoints = tuple(Endpoint(ip, 8080) for ip in ips)
    return ServicePort("default", "web", port_name, protocol, "198.19.0.10", port, endpoints)


def chains(script: str) -> dict[str, list[str]]:
    """Chain name -> body lines, parsed from the rendered script."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in script.splitlines():
        if m := re.fullmatch(r"\tchain (\S+) \{", line):
            current = found.setdefault(m.group(1), [])
        elif line == "\t}":
            current = None
        elif current is not None:
            current.append(line.strip())
    return found


def chain_named(script: str, prefix: str) -> tuple[str, list[str]]:
    [(name, body)] = [(n, b) for n, b in chains(script).items() if n.startswith(prefix)]
    return name, body


# --- the script as a whole ---------------------------------------------------------------------


def test_script_replaces_the_table_in_one_transaction_and_works_on_first_apply() -> None:
    lines = render_ruleset([web("198.18.1.1")], table="t1").splitlines()
    assert lines[:3] == ["table ip t1", "delete table ip t1", "table ip t1 {"]
    assert lines[-1] == "}"


def test_rendering_is_deterministic_whatever_the_input_order() -> None:
    a = web("198.18.1.1", "198.18.1.2")
    b = ServicePort(
        "kube-system", "dns", "dns", "UDP", "198.19.0.2", 53, (Endpoint("198.18.2.1", 53),)
    )
    c = web(port=443, port_name="https")
    reordered = ServicePort(
        a.namespace,
        a.service,
        a.port_name,
        a.protocol,
        a.cluster_ip,
        a.port,
        tuple(reversed(a.endpoints)),
    )
    assert (
        render_ruleset([a, b, c]) == render_ruleset([c, reordered, b]) == render_ruleset([a, b, c])
    )


def test_hooks_nat_and_filter_in_prerouting_and_output() -> None:
    script = render_ruleset([])
    hooks = {
        line.split(" hook ")[1].split(";")[0] for line in script.splitlines() if " hook " in line
    }
    assert hooks == {
        "prerouting priority dstnat - 10",
        "output priority -110",
        "prerouting priority dstnat",
        "output priority -100",
        "postrouting priority srcnat",
    }
    found = chains(script)
    assert "jump services" in found["nat-prerouting"]
    assert "jump services" in found["nat-output"]
    assert "ip daddr . meta l4proto . th dport vmap @service-ips" in found["services"]


def test_empty_input_renders_sets_without_elements() -> None:
    script = render_ruleset([])
    assert "elements" not in script
    assert "set cluster-ips {" in script


# --- load balancing, hairpin, rejects -----------------------------------------------------------


def test_vip_port_dispatches_to_a_service_chain_that_picks_endpoints_evenly() -> None:
    script = render_ruleset([web("198.18.1.2", "198.18.1.1", "198.18.1.3")])
    svc, body = chain_named(script, "svc-")
    assert f'198.19.0.10 . tcp . 80 comment "default/web:http" : goto {svc},' in script
    assert body[0] == 'comment "default/web:http"'
    eps = [n for n in chains(script) if n.startswith("ep-")]
    assert body[1] == (
        f"numgen random mod 3 vmap {{ 0 : goto {eps[0]}, 1 : goto {eps[1]}, 2 : goto {eps[2]} }}"
    )
    # Endpoints are ordered by address, so index i always means the same endpoint.
    assert [chains(script)[e][-1] for e in eps] == [
        f"meta l4proto tcp dnat to 198.18.1.{i}:8080" for i in (1, 2, 3)
    ]


def test_udp_endpoint_dnats_udp() -> None:
    script = render_ruleset([web("198.18.1.1", port=53, port_name="dns", protocol="UDP")])
    assert "198.19.0.10 . udp . 53" in script
    assert chain_named(script, "ep-")[1][-1] == "meta l4proto udp dnat to 198.18.1.1:8080"


def test_hairpin_marks_traffic_from_the_endpoint_itself_and_masquerades_only_marked() -> None:
    script = render_ruleset([web("198.18.1.1")])
    _, endpoint = chain_named(script, "ep-")
    assert endpoint[:2] == [
        'comment "default/web:http -> 198.18.1.1:8080"',
        "ip saddr 198.18.1.1 jump mark-for-masquerade",
    ]
    found = chains(script)
    assert found["mark-for-masquerade"] == ["meta mark set meta mark | 0x4000"]
    assert found["masquerading"] == [
        "meta mark & 0x4000 == 0 return",
        "meta mark set meta mark ^ 0x4000",
        "masquerade fully-random",
    ]
    assert "jump masquerading" in found["nat-postrouting"]


def test_port_without_endpoints_is_rejected_not_dispatched() -> None:
    script = render_ruleset([web("198.18.1.1"), web(port=443, port_name="https")])
    assert "198.19.0.10 . tcp . 443 comment" in script
    assert ": goto reject-chain" in next(line for line in script.splitlines() if ". 443 " in line)
    assert '198.19.0.10 . tcp . 80 comment "default/web:http" : return,' in script
    assert [n for n in chains(script) if n.startswith("svc-")] == [chain_named(script, "svc-")[0]]
    assert chains(script)["reject-chain"] == ["meta l4proto tcp reject with tcp reset", "reject"]


def test_unknown_ports_of_known_vips_are_rejected_before_dnat() -> None:
    script = render_ruleset([web("198.18.1.1"), web(port=443, port_name="https")])
    found = chains(script)
    assert found["cluster-ip-check"] == [
        "ip daddr . meta l4proto . th dport vmap @port-check",
        "ip daddr @cluster-ips goto reject-chain",
    ]
    assert "ct state new jump cluster-ip-check" in found["filter-prerouting"]
    assert "ct state new jump cluster-ip-check" in found["filter-output"]
    assert script.count("\t\t\t198.19.0.10,\n") == 1  # one VIP, listed once


# --- names and comments -------------------------------------------------------------------------


def test_chain_names_are_valid_unique_and_readable_even_for_odd_input() -> None:
    ports = [
        ServicePort("ns", "svc", 'h"1', "TCP", "198.19.0.1", 80, (Endpoint("198.18.1.1", 80),)),
        ServicePort("ns", "svc", "h;1", "TCP", "198.19.0.1", 81, (Endpoint("198.18.1.1", 80),)),
        ServicePort("n" * 200, "s", "", "UDP", "198.19.0.2", 53, (Endpoint("198.18.1.1", 53),)),
    ]
    script = render_ruleset(ports)
    names = list(chains(script))
    assert len(names) == len(set(names)) == 10 + 3 + 3
    assert all(NFT_IDENTIFIER.fullmatch(n) and len(n) < 128 for n in names)
    # Both sanitize to the same readable part; the hash still tells them apart.
    assert len([n for n in names if n.startswith("svc-") and n.endswith("ns/svc/tcp/h_1")]) == 2
    assert 'comment "ns/svc:h_1"' in script
    assert all(line.count('"') % 2 == 0 for line in script.splitlines())


def test_unnamed_port_is_labelled_by_number() -> None:
    port = web("198.18.1.1", port_name="")
    assert port.label == "default/web:80"
    assert "svc-" in chain_named(render_ruleset([port]), "svc-")[0]
    assert chain_named(render_ruleset([port]), "svc-")[0].endswith("default/web/tcp/80")


def test_duplicate_endpoints_from_two_slices_count_once() -> None:
    script = render_ruleset([web("198.18.1.1", "198.18.1.1")])
    assert "numgen random mod 1 vmap" in script


@given(
    st.lists(
        st.tuples(
            st.integers(1, 3),
            st.sampled_from(["TCP", "UDP"]),
            st.integers(1, 65535),
            st.lists(st.integers(1, 254), max_size=4),
        ),
        max_size=8,
        unique_by=lambda t: t[:3],
    ),
    st.randoms(),
)
def test_any_valid_input_renders_order_independent_unique_names(specs, rnd) -> None:
    ports = [
        ServicePort(
            "ns",
            f"svc{vip}",
            f"p{port}",
            proto,
            f"198.19.0.{vip}",
            port,
            tuple(Endpoint(f"198.18.0.{h}", port) for h in hosts),
        )
        for vip, proto, port, hosts in specs
    ]
    script = render_ruleset(ports)
    shuffled = list(ports)
    rnd.shuffle(shuffled)
    assert render_ruleset(shuffled) == script
    names = [line for line in script.splitlines() if line.startswith("\tchain ")]
    assert len(names) == len(set(names))


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Endpoint("198.18.1", 80), "ip"),
        (lambda: Endpoint("fd00::1", 80), "ip"),
        (lambda: Endpoint("198.18.1.1", 0), "port"),
        (lambda: Endpoint("198.18.1.1", 65536), "port"),
        (lambda: Endpoint("198.18.1.1", True), "port"),
        (lambda: web(protocol="SCTP"), "protocol"),
        (lambda: web(protocol="tcp"), "protocol"),
        (lambda: web(port=70000), "port"),
        (lambda: ServicePort("ns", "s", "p", "TCP", "198.19.0.300", 80), "cluster_ip"),
        (lambda: ServicePort("", "s", "p", "TCP", "198.19.0.1", 80), "namespace"),
        (
            lambda: ServicePort("ns", "s", "p", "TCP", "198.19.0.1", 80, [Endpoint("1.2.3.4", 1)]),
            "endpoints",
        ),
    ],
)
def test_invalid_input_raises_a_value_error_naming_the_field(build, field) -> None:
    with pytest.raises(KubeProxyError, match=rf"\b{field}\b") as info:
        build()
    assert isinstance(info.value, ValueError)


def test_error_names_the_service_port_at_fault() -> None:
    with pytest.raises(KubeProxyError, match=r"ServicePort default/web:http: protocol 'SCTP'"):
        web(protocol="SCTP")


def test_two_service_ports_claiming_one_vip_port_are_refused() -> None:
    other = ServicePort("other", "api", "http", "TCP", "198.19.0.10", 80)
    with pytest.raises(KubeProxyError, match=r"default/web:http and other/api:http both claim"):
        render_ruleset([web(), other])


@pytest.mark.parametrize("table", ["", "1abc", "a b", "a;delete", "x" * 65])
def test_bad_table_names_are_refused(table: str) -> None:
    with pytest.raises(KubeProxyError, match="table"):
        render_ruleset([], table=table)
    with pytest.raises(KubeProxyError, match="table"):
        delete_ruleset("ns1", table=table)


# --- the I/O shell, with subprocess faked ------------------------------------------------------


class FakeRun:
    def __init__(self, returncode: int = 0, stderr: str = "", exc: Exception | None = None):
        self.result = subprocess.CompletedProcess([], returncode, "", stderr)
        self.exc = exc
        self.calls: list[tuple[list[str], dict[str, object]]] = []

    def __call__(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, kwargs))
        if self.exc:
            raise self.exc
        return self.result


def test_apply_pipes_the_script_to_nft_in_the_netns(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun()
    monkeypatch.setattr(kubeproxy.subprocess, "run", fake)
    apply_ruleset("node-1", "SCRIPT", timeout=3)
    [(argv, kwargs)] = fake.calls
    assert argv == ["ip", "netns", "exec", "node-1", "nft", "-f", "-"]
    assert kwargs["input"] == "SCRIPT" and kwargs["timeout"] == 3


def test_delete_declares_then_deletes_so_absence_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun()
    monkeypatch.setattr(kubeproxy.subprocess, "run", fake)
    delete_ruleset("node-1", table="t1")
    assert fake.calls[0][1]["input"] == "table ip t1\ndelete table ip t1\n"


@pytest.mark.parametrize(
    ("fake", "match"),
    [
        (
            FakeRun(1, "Error: syntax error\n"),
            r"netns node-1: .*\(exit 1\): Error: syntax error -- check",
        ),
        (FakeRun(exc=subprocess.TimeoutExpired("nft", 10)), r"netns node-1: .*within 10"),
        (FakeRun(exc=FileNotFoundError(2, "No such file")), r"netns node-1: cannot run 'ip'"),
    ],
)
def test_nft_failures_become_kube_proxy_errors_with_context(
    monkeypatch: pytest.MonkeyPatch, fake: FakeRun, match: str
) -> None:
    monkeypatch.setattr(kubeproxy.subprocess, "run", fake)
    with pytest.raises(KubeProxyError, match=match):
        apply_ruleset("node-1", "SCRIPT")
