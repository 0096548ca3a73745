"""The cluster DNS records table and query → answer function: bytes in, bytes out, no sockets.

Queries are built with dnslib, the way a client library would send them, except where a test needs
bytes no well-behaved library produces; those are packed by hand with struct.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest
from dnslib import CLASS, EDNS0, OPCODE, QTYPE, RCODE, DNSError, DNSQuestion, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from nodemesh.local.dns import (
    EDNS_UDP_PAYLOAD,
    NEGATIVE_TTL,
    TTL,
    PodRecord,
    Rcode,
    ServiceRecord,
    ZoneConfigError,
    ZoneSnapshot,
    answer,
    respond,
)

SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
HEADLESS_IPS = ("198.18.1.10", "198.18.2.7", "198.18.1.9")
SERVICES = [
    ServiceRecord("web", "default", "198.19.0.10"),
    ServiceRecord("api", "shop", "198.19.0.11", endpoint_ips=("198.18.1.20",)),
    ServiceRecord("db", "default", None, HEADLESS_IPS),
    ServiceRecord("empty", "default", None),
]
PODS = [PodRecord("web-1", "default", "198.18.1.9"), PodRecord("api-1", "shop", "198.18.1.20")]
ZONE = ZoneSnapshot.build(SERVICES, PODS)


def query(name: str, qtype: str = "A", *, edns: EDNS0 | None = None) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    if edns is not None:
        q.add_ar(edns)
    return q


def ask(q: DNSRecord, zone: ZoneSnapshot = ZONE, *, max_udp: int | None = 512) -> DNSRecord:
    """Send ``q`` through answer() and check what every response must carry."""
    wire = answer(q.pack(), zone, max_udp=max_udp)
    assert wire is not None
    reply = DNSRecord.parse(wire)
    assert reply.header.id == q.header.id
    assert reply.header.qr == 1
    assert reply.header.ra == 0  # we never recurse, and must not claim to
    return reply


def lookup(name: str, qtype: str = "A", zone: ZoneSnapshot = ZONE) -> DNSRecord:
    return ask(query(name, qtype), zone)


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def assert_negative(reply: DNSRecord, rcode: int, soa_owner: str = "cluster.local.") -> None:
    """NXDOMAIN or NODATA: authoritative, no answers, an SOA that bounds negative caching."""
    assert reply.header.rcode == rcode
    assert reply.header.aa == 1
    assert reply.rr == []
    [soa] = reply.auth
    assert soa.rtype == QTYPE.SOA
    assert str(soa.rname) == soa_owner
    assert soa.ttl == NEGATIVE_TTL
    assert soa.rdata.times[-1] == NEGATIVE_TTL


def header(ident: int = 0x1234, flags: int = 0x0100, counts: tuple = (1, 0, 0, 0)) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, *counts)


QUESTION = b"\x03web\x07default\x03svc\x07cluster\x05local\x00" + struct.pack("!HH", 1, 1)
OPT = b"\x00" + struct.pack("!HHIH", QTYPE.OPT, 1232, 0, 0)
ROOT_A = b"\x00" + struct.pack("!HHIH", QTYPE.A, 1, 0, 4) + bytes(4)
LONG_NAME = b"".join(b"\x3f" + bytes([letter]) * 63 for letter in b"abcde") + b"\x00"


# --- positive answers --------------------------------------------------------------------------


def test_service_name_resolves_to_its_vip_authoritatively() -> None:
    reply = lookup("web.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.header.aa == 1
    assert reply.header.rd == 1  # copied from the query
    assert addresses(reply) == ["198.19.0.10"]
    assert [rr.ttl for rr in reply.rr] == [TTL]
    assert reply.auth == []


def test_vip_service_ignores_its_endpoints() -> None:
    assert addresses(lookup("api.shop.svc.cluster.local")) == ["198.19.0.11"]


def test_names_are_case_insensitive_and_the_answer_echoes_the_askers_case() -> None:
    reply = lookup("WeB.DeFaulT.SVC.Cluster.LOCAL")
    assert addresses(reply) == ["198.19.0.10"]
    assert str(reply.rr[0].rname) == "WeB.DeFaulT.SVC.Cluster.LOCAL."  # 0x20 randomisation works
    assert str(reply.q.qname) == "WeB.DeFaulT.SVC.Cluster.LOCAL."


def test_headless_service_resolves_to_endpoints_sorted_numerically() -> None:
    reply = lookup("db.default.svc.cluster.local")
    assert addresses(reply) == ["198.18.1.9", "198.18.1.10", "198.18.2.7"]


def test_headless_service_without_endpoints_exists_but_has_no_address() -> None:
    assert_negative(lookup("empty.default.svc.cluster.local"), RCODE.NOERROR)


def test_pod_dashed_ip_name_resolves_in_its_own_namespace_only() -> None:
    assert addresses(lookup("198-18-1-20.shop.pod.cluster.local")) == ["198.18.1.20"]
    assert_negative(lookup("198-18-1-20.default.pod.cluster.local"), RCODE.NXDOMAIN)
    assert_negative(lookup("198-18-9-9.shop.pod.cluster.local"), RCODE.NXDOMAIN)


def test_apex_answers_its_soa() -> None:
    reply = lookup("cluster.local", "SOA")
    [soa] = reply.rr
    assert soa.rtype == QTYPE.SOA
    assert str(soa.rdata.mname) == "ns.dns.cluster.local."
    assert str(soa.rdata.rname) == "hostmaster.cluster.local."


def test_any_query_returns_the_records_of_the_name() -> None:
    assert addresses(lookup("web.default.svc.cluster.local", "ANY")) == ["198.19.0.10"]


# --- reverse lookups ---------------------------------------------------------------------------


def ptr_targets(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.PTR]


def test_ptr_of_a_service_vip_names_the_service() -> None:
    reply = lookup("10.0.19.198.in-addr.arpa", "PTR")
    assert reply.header.aa == 1
    assert ptr_targets(reply) == ["web.default.svc.cluster.local."]


def test_ptr_of_a_pod_ip_names_the_pods_dashed_name() -> None:
    reply = lookup("20.1.18.198.IN-ADDR.ARPA", "PTR")
    assert ptr_targets(reply) == ["198-18-1-20.shop.pod.cluster.local."]


def test_unknown_ip_in_the_cluster_range_is_nxdomain_from_its_reverse_zone() -> None:
    assert_negative(
        lookup("99.9.19.198.in-addr.arpa", "PTR"), RCODE.NXDOMAIN, "19.198.in-addr.arpa."
    )
    assert_negative(
        lookup("1.1.18.198.in-addr.arpa", "PTR"), RCODE.NXDOMAIN, "18.198.in-addr.arpa."
    )


def test_reverse_names_above_records_are_nodata() -> None:
    assert_negative(lookup("0.19.198.in-addr.arpa", "PTR"), RCODE.NOERROR, "19.198.in-addr.arpa.")


@pytest.mark.parametrize(
    "name", ["1.0.0.10.in-addr.arpa", "0.20.198.in-addr.arpa", "198.in-addr.arpa", "in-addr.arpa"]
)
def test_reverse_names_outside_the_cluster_range_are_refused(name: str) -> None:
    reply = lookup(name, "PTR")
    assert reply.header.rcode == RCODE.REFUSED
    assert reply.header.aa == 0


def test_vip_outside_the_reverse_zones_still_resolves_forward() -> None:
    zone = ZoneSnapshot.build([ServiceRecord("old", "default", "10.96.0.1")], [])
    assert addresses(lookup("old.default.svc.cluster.local", zone=zone)) == ["10.96.0.1"]
    assert lookup("1.0.96.10.in-addr.arpa", "PTR", zone).header.rcode == RCODE.REFUSED


# --- negative answers --------------------------------------------------------------------------


def glibc_candidates(name: str) -> list[str]:
    """What glibc asks for with ndots:5 before trying the name as absolute, in order."""
    return [f"{name}.{suffix}" for suffix in SEARCH]


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("web", "web.default.svc.cluster.local"),
        ("web.default", "web.default.svc.cluster.local"),
        ("web.default.svc", "web.default.svc.cluster.local"),
        ("api.shop", "api.shop.svc.cluster.local"),
        ("web.default.svc.cluster.local", None),
        ("missing", None),
    ],
)
def test_every_search_expansion_but_the_real_name_is_nxdomain(
    typed: str, found: str | None
) -> None:
    for candidate in glibc_candidates(typed):
        reply = lookup(candidate)
        if candidate == found:
            assert reply.header.rcode == RCODE.NOERROR and addresses(reply)
        elif candidate in ("default.svc.cluster.local", "svc.cluster.local"):
            assert_negative(reply, RCODE.NOERROR)
        else:
            assert_negative(reply, RCODE.NXDOMAIN)


@pytest.mark.parametrize("qtype", ["AAAA", "MX", "TXT", "SRV", "NS", "CNAME", "PTR", "HTTPS"])
def test_other_types_of_an_existing_name_are_nodata_so_glibc_does_not_wait(qtype: str) -> None:
    assert_negative(lookup("web.default.svc.cluster.local", qtype), RCODE.NOERROR)


@pytest.mark.parametrize(
    "name", ["default.svc.cluster.local", "svc.cluster.local", "shop.pod.cluster.local"]
)
def test_names_with_names_below_them_are_nodata_not_nxdomain(name: str) -> None:
    assert_negative(lookup(name), RCODE.NOERROR)


@pytest.mark.parametrize(
    "name", ["example.com", "web", "local", "cluster.local.example.com", "kubernetes.default"]
)
def test_names_outside_the_cluster_are_refused_without_authority(name: str) -> None:
    reply = lookup(name)
    assert reply.header.rcode == RCODE.REFUSED
    assert reply.header.aa == 0
    assert reply.rr == [] and reply.auth == []
    assert str(reply.q.qname) == name + "."


def test_root_is_refused() -> None:
    assert lookup(".", "NS").header.rcode == RCODE.REFUSED


def test_classes_other_than_in_are_refused() -> None:
    q = DNSRecord(q=DNSQuestion("version.bind", QTYPE.TXT, CLASS.CH))
    assert ask(q).header.rcode == RCODE.REFUSED


@pytest.mark.parametrize("qtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_refused(qtype: str) -> None:
    assert lookup("cluster.local", qtype).header.rcode == RCODE.REFUSED


# --- header-level rcodes -----------------------------------------------------------------------


@pytest.mark.parametrize("opcode", ["IQUERY", "STATUS", "NOTIFY", "UPDATE"])
def test_opcodes_other_than_query_are_notimp(opcode: str) -> None:
    q = query("web.default.svc.cluster.local")
    q.header.opcode = getattr(OPCODE, opcode)
    reply = ask(q)
    assert reply.header.rcode == RCODE.NOTIMP
    assert reply.header.opcode == getattr(OPCODE, opcode)


def test_responses_are_never_answered() -> None:
    q = query("web.default.svc.cluster.local")
    q.header.qr = 1
    assert answer(q.pack(), ZONE) is None


@pytest.mark.parametrize("size", range(12))
def test_anything_shorter_than_a_header_is_dropped(size: int) -> None:
    assert answer(bytes(size), ZONE) is None


@pytest.mark.parametrize(
    ("why", "wire"),
    [
        ("no question", header(counts=(0, 0, 0, 0))),
        ("two questions", header(counts=(2, 0, 0, 0)) + QUESTION + QUESTION),
        ("an answer in a query", header(counts=(1, 1, 0, 0)) + QUESTION),
        ("an authority in a query", header(counts=(1, 0, 1, 0)) + QUESTION),
        ("two additionals", header(counts=(1, 0, 0, 2)) + QUESTION + OPT + OPT),
        ("pointer in the question", header() + b"\xc0\x00" + struct.pack("!HH", 1, 1)),
        ("64-byte label", header() + b"\x40" + b"a" * 64 + b"\x00" + struct.pack("!HH", 1, 1)),
        ("name over 255 bytes", header() + LONG_NAME + struct.pack("!HH", 1, 1)),
        ("name cut short", header() + b"\x03web\x07def"),
        ("no type and class", header() + b"\x03web\x00\x00"),
        ("additional cut short", header(counts=(1, 0, 0, 1)) + QUESTION + OPT[:5]),
        ("additional owned by a name", header(counts=(1, 0, 0, 1)) + QUESTION + b"\x01x" + OPT),
        ("OPT cut short", header(counts=(1, 0, 0, 1)) + QUESTION + OPT[:-1]),
        ("OPT options missing", header(counts=(1, 0, 0, 1)) + QUESTION + OPT[:-2] + b"\x00\x04"),
        ("A in additional", header(counts=(1, 0, 0, 1)) + QUESTION + ROOT_A),
    ],
)
def test_malformed_queries_get_formerr_echoing_id_and_opcode(why: str, wire: bytes) -> None:
    response = respond(wire, ZONE)
    assert response is not None, why
    assert response.rcode is Rcode.FORMERR
    assert response.reason
    reply = DNSRecord.parse(response.wire)
    assert reply.header.id == 0x1234
    assert reply.header.rcode == RCODE.FORMERR
    assert reply.header.rd == 1


def test_the_longest_legal_name_is_answered() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters, 255 on the wire
    assert lookup(name).header.rcode == RCODE.REFUSED


def test_binary_labels_are_read_and_echoed() -> None:
    wire = header() + b"\x03\xff.\x00\x07cluster\x05local\x00" + struct.pack("!HH", 1, 1)
    response = respond(wire, ZONE)
    assert response is not None and response.rcode is Rcode.NXDOMAIN
    assert response.wire[12 : 12 + 20] == wire[12 : 12 + 20]


# --- EDNS and truncation -----------------------------------------------------------------------


def opt_of(reply: DNSRecord):
    opts = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    assert len(opts) <= 1
    return opts[0] if opts else None


def test_edns_query_gets_an_opt_with_our_payload_size() -> None:
    reply = ask(query("web.default.svc.cluster.local", edns=EDNS0(udp_len=4096)))
    opt = opt_of(reply)
    assert opt is not None
    assert opt.edns_len == EDNS_UDP_PAYLOAD
    assert opt.edns_ver == 0
    assert opt.edns_do == 0
    assert addresses(reply) == ["198.19.0.10"]


def test_edns_do_bit_is_echoed() -> None:
    reply = ask(query("web.default.svc.cluster.local", edns=EDNS0(udp_len=1232, flags="do")))
    assert opt_of(reply).edns_do == 1


def test_plain_query_gets_no_opt() -> None:
    assert opt_of(lookup("web.default.svc.cluster.local")) is None


def test_negative_answers_keep_the_opt() -> None:
    reply = ask(query("nope.default.svc.cluster.local", edns=EDNS0(udp_len=1232)))
    assert_negative(reply, RCODE.NXDOMAIN)
    assert opt_of(reply) is not None


def test_unknown_edns_version_is_badvers() -> None:
    response = respond(query("web.default.svc.cluster.local", edns=EDNS0(version=1)).pack(), ZONE)
    assert response is not None and response.rcode is Rcode.BADVERS
    reply = DNSRecord.parse(response.wire)
    assert reply.header.rcode == 0  # BADVERS = 16 lives in the OPT's extended rcode
    assert opt_of(reply).edns_rcode == 1
    assert reply.rr == []


def big_zone(endpoints: int) -> ZoneSnapshot:
    ips = tuple(f"198.18.{1 + i // 200}.{1 + i % 200}" for i in range(endpoints))
    return ZoneSnapshot.build([ServiceRecord("big", "default", None, ips)], [])


BIG = "big.default.svc.cluster.local"


def test_udp_answer_over_512_bytes_is_truncated_to_header_and_question() -> None:
    q = query(BIG)
    response = respond(q.pack(), big_zone(40))
    assert response is not None and response.truncated
    assert len(response.wire) <= 512
    reply = DNSRecord.parse(response.wire)
    assert reply.header.tc == 1
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == [] and reply.auth == []
    assert str(reply.q.qname) == BIG + "."


def test_tcp_answer_is_never_truncated() -> None:
    reply = ask(query(BIG), big_zone(40), max_udp=None)
    assert reply.header.tc == 0
    assert len(addresses(reply)) == 40


def test_edns_size_lifts_the_udp_limit() -> None:
    reply = ask(query(BIG, edns=EDNS0(udp_len=4096)), big_zone(40))
    assert reply.header.tc == 0
    assert len(addresses(reply)) == 40


def test_edns_size_is_capped_at_our_payload_size_and_the_opt_survives_truncation() -> None:
    response = respond(query(BIG, edns=EDNS0(udp_len=65000)).pack(), big_zone(100))
    assert response is not None and response.truncated
    assert len(response.wire) <= EDNS_UDP_PAYLOAD
    assert opt_of(DNSRecord.parse(response.wire)) is not None


def test_edns_size_below_512_counts_as_512() -> None:
    q = query(BIG, edns=EDNS0(udp_len=100))
    assert ask(q, big_zone(20)).header.tc == 0  # 20 addresses fit in 512 bytes
    assert ask(q, big_zone(40)).header.tc == 1


# --- every prefix and every bit flip of a valid query ------------------------------------------


VALID = query("Web.default.svc.cluster.local", edns=EDNS0(udp_len=1232)).pack()


def check_never_raises(wire: bytes) -> None:
    """answer() returns None or a well-formed response echoing the query ID."""
    reply = answer(wire, ZONE)
    if reply is None:
        return
    ident, flags = struct.unpack_from("!HH", reply)
    assert ident == int.from_bytes(wire[:2], "big")
    assert flags & 0x8000
    try:
        DNSRecord.parse(reply)
    except DNSError as exc:
        # We echo binary labels as received; dnslib only reads labels that are UTF-8.
        assert "Invalid label" in str(exc)


def test_every_prefix_of_a_query_is_dropped_or_formerr() -> None:
    for size in range(len(VALID)):
        prefix = VALID[:size]
        check_never_raises(prefix)
        response = respond(prefix, ZONE)
        if size < 12:
            assert response is None
        else:
            assert response is not None and response.rcode is Rcode.FORMERR, size
    assert respond(VALID, ZONE).rcode is Rcode.NOERROR


def test_every_bit_flip_of_a_query_is_handled() -> None:
    for bit in range(len(VALID) * 8):
        flipped = bytearray(VALID)
        flipped[bit // 8] ^= 1 << (bit % 8)
        check_never_raises(bytes(flipped))


def test_pointer_chains_in_the_additional_section_cannot_recurse() -> None:
    # dnslib's own parser raises RecursionError on this; our reader never follows pointers.
    chain = b"".join(struct.pack("!H", 0xC000 | offset) for offset in range(12, 6000, 2))
    wire = header(counts=(1, 0, 0, 1)) + QUESTION + b"\xc0\x0c" + chain
    assert respond(wire, ZONE).rcode is Rcode.FORMERR


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_answer_never_raises_on_arbitrary_bytes(wire: bytes) -> None:
    check_never_raises(wire)


labels = st.lists(st.binary(min_size=1, max_size=70), max_size=6)
additional = st.one_of(st.just(b""), st.just(OPT), st.binary(max_size=40))


@settings(max_examples=500, deadline=None)
@given(
    flags=st.integers(0, 0xFFFF),
    counts=st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 1), st.integers(0, 2)),
    name=labels,
    qtype=st.integers(0, 0xFFFF),
    qclass=st.sampled_from([1, 3, 255, 0xFFFF]),
    tail=additional,
)
def test_answer_never_raises_on_near_valid_queries(
    flags, counts, name, qtype, qclass, tail
) -> None:
    encoded = b"".join(bytes([min(len(label), 255)]) + label for label in name) + b"\x00"
    check_never_raises(
        header(0xBEEF, flags, counts) + encoded + struct.pack("!HH", qtype, qclass) + tail
    )


# --- building the zone -------------------------------------------------------------------------


def test_bad_records_reject_only_themselves() -> None:
    bad = [
        ServiceRecord("web", "default", "198.19.0.99"),  # duplicate of SERVICES[0]
        ServiceRecord("Bad_Name", "default", "198.19.0.20"),
        ServiceRecord("v6", "default", "fd00::1"),
        ServiceRecord("hl", "default", None, ("198.18.1.1", "not-an-ip")),
    ]
    bad_pod = PodRecord("p", "Not A Namespace", "198.18.1.30")
    zone = ZoneSnapshot.build([*SERVICES, *bad], [*PODS, bad_pod, PodRecord("q", "x", "1.2.3")])
    assert [r.record for r in zone.rejected] == [*bad, bad_pod, PodRecord("q", "x", "1.2.3")]
    assert all(r.reason for r in zone.rejected)
    assert "duplicate" in zone.rejected[0].reason
    assert zone.lookup("web.default.svc.cluster.local") == ("198.19.0.10",)
    assert zone.lookup("hl.default.svc.cluster.local") == ()
    assert ZONE.rejected == ()


def test_service_and_namespace_names_are_normalised_to_lower_case() -> None:
    zone = ZoneSnapshot.build([ServiceRecord("Web", "Default", "198.19.0.10")], [])
    assert zone.lookup("WEB.default.svc.cluster.local.") == ("198.19.0.10",)


def test_pods_sharing_a_namespace_and_ip_share_one_name() -> None:
    pods = [PodRecord("a", "default", "198.18.1.5"), PodRecord("b", "default", "198.18.1.5")]
    zone = ZoneSnapshot.build([], pods)
    assert zone.lookup("198-18-1-5.default.pod.cluster.local") == ("198.18.1.5",)


def test_custom_domain_and_reverse_cidrs() -> None:
    zone = ZoneSnapshot.build(
        [ServiceRecord("web", "default", "10.0.0.5")],
        [],
        "Corp.Internal.",
        reverse_cidrs=["10.0.0.0/8"],
        serial=7,
    )
    assert addresses(lookup("web.default.svc.corp.internal", zone=zone)) == ["10.0.0.5"]
    assert lookup("web.default.svc.cluster.local", zone=zone).header.rcode == RCODE.REFUSED
    reply = lookup("5.0.0.10.in-addr.arpa", "PTR", zone)
    assert ptr_targets(reply) == ["web.default.svc.corp.internal."]
    assert lookup("corp.internal", "SOA", zone).rr[0].rdata.times[0] == 7


@pytest.mark.parametrize(
    "kwargs",
    [
        {"domain": "bad domain"},
        {"domain": ""},
        {"reverse_cidrs": ["198.18.0.1/15"]},
        {"reverse_cidrs": ["fd00::/8"]},
        {"serial": -1},
        {"serial": 2**32},
    ],
)
def test_bad_zone_configuration_raises(kwargs: dict) -> None:
    with pytest.raises(ZoneConfigError):
        ZoneSnapshot.build([], [], **kwargs)


def test_snapshot_cannot_be_changed_after_build() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ZONE.serial = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        ZONE.addresses[("x",)] = ("1.2.3.4",)  # type: ignore[index]


def test_empty_zone_still_answers_for_its_apexes() -> None:
    zone = ZoneSnapshot.build([], [])
    assert_negative(lookup("web.default.svc.cluster.local", zone=zone), RCODE.NXDOMAIN)
    assert lookup("cluster.local", "SOA", zone).header.rcode == RCODE.NOERROR
