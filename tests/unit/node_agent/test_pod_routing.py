"""Reply routing rendered for a pod's netns, and the choice of the address to deliver from."""

import pytest

from node_agent import pod_routing
from node_agent.pod import AGENT_MARK, delivery_source

POD = ("198.18.2.7",)
# `ip -j rule show` in a pod netns with the rule installed (iproute2 6.1).
RULES = (
    '[{"priority":0,"src":"all","table":"local"},'
    '{"priority":32764,"src":"all","fwmark":"0x53a","table":"1337"},'
    '{"priority":32766,"src":"all","table":"main"},'
    '{"priority":32767,"src":"all","table":"default"}]'
)


def test_the_table_saves_the_agents_mark_and_restores_it_on_the_apps_replies():
    script = pod_routing.render_nft(0x539, 0x53A)
    lines = [line.strip() for line in script.splitlines()]
    # Declared, deleted and made again in one transaction: installing twice leaves one table.
    assert lines[:3] == ["table ip nodemesh", "delete table ip nodemesh", "table ip nodemesh {"]
    assert "type filter hook prerouting priority mangle; policy accept;" in lines
    assert 'iifname "lo" meta mark 0x539 ct state new ct mark set 0x53a' in lines
    assert "type route hook output priority mangle; policy accept;" in lines
    assert "meta mark != 0x539 ct mark 0x53a meta mark set ct mark" in lines


def test_the_reply_mark_is_never_the_agents_own():
    # The agent's tunnels leave by eth0 with AGENT_MARK: the lo route must not catch them.
    assert pod_routing.AGENT_MARK == AGENT_MARK
    assert pod_routing.REPLY_MARK != AGENT_MARK


def test_rule_and_route_commands():
    assert pod_routing.render_rule("add") == [
        "ip", "rule", "add", "pref", "32764", "fwmark", "0x53a", "lookup", "1337",
    ]  # fmt: skip
    assert pod_routing.render_route() == [
        "ip", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", "1337",
    ]  # fmt: skip


def test_the_rule_is_found_in_ip_json_output():
    assert pod_routing.has_rule(RULES)
    assert not pod_routing.has_rule(RULES.replace("0x53a", "0x539"))
    assert not pod_routing.has_rule(RULES.replace('"1337"', '"100"'))
    assert not pod_routing.has_rule("")


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("198.18.1.9", "198.18.1.9"),  # another pod, an outside client
        (" 198.18.1.9 ", "198.18.1.9"),
        ("198.18.2.7", None),  # the pod itself (hairpin): its own address, as before
        ("127.0.0.1", None),
        ("0.0.0.0", None),
        ("224.0.0.1", None),
        ("255.255.255.255", None),
        ("2001:db8::1", None),  # the pod network and its reply routing are IPv4
        ("unknown", None),  # Forwarded may carry anything (RFC 7239 obfuscated names)
        ("", None),
        (None, None),
    ],
)
def test_delivery_source(client, expected):
    assert delivery_source(client, POD) == expected
