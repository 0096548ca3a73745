"""Reply routing inside a pod, so the agent can deliver to the app from the client's own address.

The agent delivers an inbound connection (HBONE, or captured plaintext) to the app from a socket
it makes inside the pod's netns. Bound to the client's IP (IP_TRANSPARENT), the app sees the real
client, but its replies go to a non-local address and would leave by the pod's default route
(towards a client that never sent the SYN). Istio ambient's in-pod mode solves this with connmark
and a policy route, and so does nodemesh, per pod netns:

    table ip nodemesh                                         (owned by nodemesh, one per pod)
      prerouting, iif lo, mark AGENT_MARK, ct new  → ct mark  = REPLY_MARK   (the agent's SYN)
      route output, mark != AGENT_MARK, ct mark REPLY_MARK → meta mark = REPLY_MARK (app replies)
    ip rule  fwmark REPLY_MARK lookup TABLE            (pref RULE_PREF)
    ip route local 0.0.0.0/0 dev lo table TABLE       every reply comes back in over lo, where
                                                      the agent's transparent socket takes it

The reply mark differs from the agent's own: the agent's tunnels and passthrough connections
(marked AGENT_MARK, leaving by eth0) must keep the main table. The agent's SYN is seen at
prerouting only after it looped over lo, so traffic leaving the pod is never tagged. IPv4 only:
the pod network and capture are IPv4 (bpf/README.md).

`render_*` are pure (tested in tests/unit/node_agent/test_pod_routing.py); `install` and `remove`
run them in the pod's netns and are idempotent, for an agent that re-adopts a pod after a restart.
"""

from __future__ import annotations

import json
import logging

from nodemesh.local.netns import NetnsError, call_in_netns, run

log = logging.getLogger("nodemesh.agent.pod_routing")

AGENT_MARK = 0x539  # the default of CaptureProgram(mark=...), = node_agent.pod.AGENT_MARK
REPLY_MARK = 0x53A  # the app's replies to a transparent delivery; never on an agent socket
TABLE = 1337  # the policy-routing table (0x539) holding `local 0.0.0.0/0 dev lo`
RULE_PREF = 32764  # before `main` (32766), after `local` (0), as Istio's in-pod rule
NFT_TABLE = "nodemesh"


class PodRoutingError(RuntimeError):
    """The reply routing of a pod could not be set up; transparent delivery stays off there."""


def render_nft(agent_mark: int = AGENT_MARK, reply_mark: int = REPLY_MARK) -> str:
    """An `nft -f` script that (re)creates the table atomically: declaring it first makes the
    delete succeed on a fresh netns, so the same script installs and re-installs."""
    return (
        f"table ip {NFT_TABLE}\n"
        f"delete table ip {NFT_TABLE}\n"
        f"table ip {NFT_TABLE} {{\n"
        "  chain deliveries {\n"
        "    type filter hook prerouting priority mangle; policy accept;\n"
        f'    iifname "lo" meta mark {agent_mark:#x} ct state new ct mark set {reply_mark:#x}\n'
        "  }\n"
        "  chain replies {\n"
        "    type route hook output priority mangle; policy accept;\n"
        f"    meta mark != {agent_mark:#x} ct mark {reply_mark:#x} meta mark set ct mark\n"
        "  }\n"
        "}\n"
    )


def render_rule(verb: str, reply_mark: int = REPLY_MARK, table: int = TABLE) -> list[str]:
    return [
        "ip",
        "rule",
        verb,
        "pref",
        str(RULE_PREF),
        "fwmark",
        f"{reply_mark:#x}",
        "lookup",
        str(table),
    ]


def render_route(table: int = TABLE) -> list[str]:
    return ["ip", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", str(table)]


def has_rule(rules_json: str, reply_mark: int = REPLY_MARK, table: int = TABLE) -> bool:
    """Is our rule among `ip -j rule show`'s output? (`ip rule add` would add a duplicate.)"""
    for rule in json.loads(rules_json or "[]"):
        mark = rule.get("fwmark")
        if (
            mark is not None
            and int(str(mark), 0) == reply_mark
            and str(rule.get("table")) == str(table)
        ):
            return True
    return False


def install(netns: str, agent_mark: int = AGENT_MARK) -> None:
    """Set up reply routing in `netns` (idempotent). Raises PodRoutingError naming the step."""
    try:
        call_in_netns(netns, _install_here, agent_mark)
    except (NetnsError, OSError, ValueError) as exc:
        raise PodRoutingError(
            f"reply routing in netns {netns}: {exc} (is nftables installed, with conntrack?);"
            " the agent delivers from the pod's own address there"
        ) from exc


def remove(netns: str) -> None:
    """Undo `install` (idempotent; a netns that is already gone has nothing left to remove)."""
    try:
        call_in_netns(netns, _remove_here)
    except FileNotFoundError:
        return
    except (NetnsError, OSError) as exc:
        log.warning("could not remove reply routing from netns %s: %s", netns, exc)


def _install_here(agent_mark: int) -> None:
    run(["nft", "-f", "-"], stdin=render_nft(agent_mark))
    run(render_route())
    if not has_rule(run(["ip", "-j", "rule", "show"])):
        run(render_rule("add"))


def _remove_here() -> None:
    run(["nft", "-f", "-"], stdin=f"table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\n")
    while has_rule(run(["ip", "-j", "rule", "show"])):
        run(render_rule("del"))
    run(["ip", "route", "flush", "table", str(TABLE)])
