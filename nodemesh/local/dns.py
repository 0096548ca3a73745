"""Cluster DNS without I/O: the records table and the query → answer function.

Theory of operation
-------------------
Pods resolve Service names exactly as in Kubernetes.  Each pod's resolv.conf names the node
gateway as its only nameserver, with ``search <ns>.svc.cluster.local svc.cluster.local
cluster.local`` and ``options ndots:5``, so glibc asks for search expansions such as
``web.default.default.svc.cluster.local`` before it reaches the name that exists.  Every miss must
be a fast, authoritative NXDOMAIN; a timeout there costs the application seconds per lookup.

The records live in a :class:`ZoneSnapshot` (:mod:`nodemesh.local.dns_zone`), an immutable index
built in one go from Service and pod records; a bad record rejects only itself (see
``ZoneSnapshot.rejected``).  The I/O shell (:mod:`nodemesh.local.dns_server`) publishes a new
snapshot by swapping one reference, so a query is answered wholly from the old table or wholly
from the new one.

:func:`respond` maps one query message to at most one response message:

==========================================  ===================================================
query                                       response
==========================================  ===================================================
shorter than a header, or itself a reply    none: nothing to address, and no reply loops
opcode other than QUERY                     NOTIMP
not one well-formed question (+ OPT)        FORMERR
EDNS version above 0                        BADVERS (RFC 6891)
name outside our zones, class not IN, XFR   REFUSED: this machine has no outside network, so
                                            there is no upstream to forward to
existing name, type with records            NOERROR, AA, the records (TTL 5, sorted)
existing name, any other type               NOERROR, AA, no answer (NODATA), SOA in authority
missing name inside our zones               NXDOMAIN, AA, SOA in authority (negative TTL 5)
==========================================  ===================================================

"Our zones" are the cluster domain and the reverse zones covering the cluster range
(198.18.0.0/15 gives ``18.198.in-addr.arpa`` and ``19.198.in-addr.arpa``).  Names that only have
names below them (``default.svc.cluster.local``) exist without records, so they get NODATA and
not NXDOMAIN (RFC 8020: NXDOMAIN would deny everything beneath them).

Only the question section is read, by a small bounded reader (:mod:`nodemesh.local.dns_query`),
plus one optional EDNS OPT record; dnslib builds and encodes the answers.  dnslib's own parser
is not used on untrusted bytes: it raises ``UnicodeDecodeError`` from some record types and
``RecursionError`` on chains of compression pointers, and a query needs none of what it would
parse.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from dnslib import CLASS, EDNS0, OPCODE, PTR, QTYPE, RR, SOA, A, DNSHeader, DNSLabel, DNSRecord

from nodemesh.local.dns_query import HEADER, Edns, MalformedQueryError, Query, read_query
from nodemesh.local.dns_zone import (
    CLUSTER_CIDRS,
    Name,
    PodRecord,
    RejectedRecord,
    ServiceRecord,
    ZoneConfigError,
    ZoneSnapshot,
    zone_apex,
)

# Defined beside the code that uses them (the records table, the query reader), re-exported.
__all__ = [
    "CLUSTER_CIDRS",
    "MalformedQueryError",
    "Name",
    "PodRecord",
    "RejectedRecord",
    "ServiceRecord",
    "ZoneConfigError",
    "ZoneSnapshot",
]

TTL = 5
"""Seconds a positive answer may be cached: short, so a changed Service is seen quickly."""
NEGATIVE_TTL = 5
"""SOA minimum and TTL, which bound how long an NXDOMAIN/NODATA may be cached (RFC 2308)."""
PLAIN_UDP_PAYLOAD = 512
"""Largest UDP response a client without EDNS accepts (RFC 1035)."""
EDNS_UDP_PAYLOAD = 1232
"""The UDP size we advertise and the most we send over UDP (the DNS flag day 2020 value)."""
MAX_MESSAGE = 65535
"""Largest message the 2-byte length prefix of DNS over TCP can carry."""
_QR = 0x8000
_OPCODE_MASK = 0x7800
_RD = 0x0100
_ZONE_TRANSFERS = frozenset({QTYPE.AXFR, QTYPE.IXFR})
_SOA_TIMERS = (7200, 1800, 86400)  # refresh, retry, expire: unused, as nothing transfers the zone


class Rcode(IntEnum):
    """Response codes this server sends; the values are the wire values (BADVERS is extended)."""

    NOERROR = 0
    FORMERR = 1
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    BADVERS = 16


# --- deciding the answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    rcode: Rcode
    authoritative: bool = False
    answers: tuple[tuple[int, object], ...] = ()  # (rtype, dnslib rdata); owner is the qname
    soa_apex: Name | None = None  # zone whose SOA goes in authority, for negative caching


def _resolve(zone: ZoneSnapshot, query: Query) -> _Outcome:
    """Decide rcode and records; see the table in the module docstring."""
    if query.edns is not None and query.edns.version > 0:
        return _Outcome(Rcode.BADVERS)
    apex = zone_apex(query.name, zone.apexes)
    question = query.question
    if apex is None or question.qclass != CLASS.IN or question.qtype in _ZONE_TRANSFERS:
        return _Outcome(Rcode.REFUSED)
    if query.name not in zone.names:
        return _Outcome(Rcode.NXDOMAIN, authoritative=True, soa_apex=apex)
    records = _records(zone, query.name, question.qtype, apex)
    return _Outcome(Rcode.NOERROR, True, records, soa_apex=None if records else apex)


def _records(zone: ZoneSnapshot, name: Name, qtype: int, apex: Name) -> tuple:
    wanted = {QTYPE.A, QTYPE.PTR, QTYPE.SOA} if qtype == QTYPE.ANY else {qtype}
    records: list[tuple[int, object]] = []
    if QTYPE.A in wanted:
        records += [(QTYPE.A, A(ip)) for ip in zone.addresses.get(name, ())]
    if QTYPE.PTR in wanted:
        records += [(QTYPE.PTR, PTR(DNSLabel(target))) for target in zone.pointers.get(name, ())]
    if QTYPE.SOA in wanted and name == apex:
        records.append((QTYPE.SOA, _soa(zone)))
    return tuple(records)


def _soa(zone: ZoneSnapshot) -> SOA:
    """The SOA Kubernetes' CoreDNS serves; its minimum is our negative TTL."""
    return SOA(
        mname=DNSLabel([b"ns", b"dns", *zone.domain]),
        rname=DNSLabel([b"hostmaster", *zone.domain]),
        times=(zone.serial, *_SOA_TIMERS, NEGATIVE_TTL),
    )


# --- writing the response --------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """One encoded response, with what the I/O shell needs for stats and logs."""

    wire: bytes
    rcode: Rcode
    truncated: bool = False
    reason: str = ""  # why a FORMERR was sent, for a debug log


def _encode(zone: ZoneSnapshot, query: Query, outcome: _Outcome, limit: int) -> Response:
    header = DNSHeader(
        id=query.ident,
        bitmap=0,
        qr=1,
        aa=int(outcome.authoritative),
        rd=int(bool(query.flags & _RD)),
        rcode=outcome.rcode & 0xF,
    )
    reply = DNSRecord(header, questions=[query.question])
    for rtype, rdata in outcome.answers:
        reply.add_answer(RR(query.question.qname, rtype, rdata=rdata, ttl=TTL))
    if outcome.soa_apex is not None:
        soa_owner = DNSLabel(outcome.soa_apex)
        reply.add_auth(RR(soa_owner, QTYPE.SOA, rdata=_soa(zone), ttl=NEGATIVE_TTL))
    if query.edns is not None:
        flags = "do" if query.edns.dnssec_ok else ""
        opt = EDNS0(udp_len=EDNS_UDP_PAYLOAD, ext_rcode=outcome.rcode >> 4, flags=flags)
        reply.add_ar(opt)
    return _fit(reply, outcome.rcode, limit)


def _fit(reply: DNSRecord, rcode: Rcode, limit: int) -> Response:
    """Pack; if too big, keep question and OPT and set TC so the client retries over TCP."""
    wire = reply.pack()
    if len(wire) <= limit:
        return Response(wire, rcode)
    reply.rr, reply.auth = [], []
    reply.header.tc = 1
    return Response(reply.pack(), rcode, truncated=True)


def _size_limit(max_udp: int | None, edns: Edns | None) -> int:
    """The plain limit, raised to the client's EDNS size (clamped to 512..1232) if it sent one."""
    if max_udp is None:
        return MAX_MESSAGE
    if edns is None:
        return max_udp
    return max(max_udp, min(max(edns.udp_payload, PLAIN_UDP_PAYLOAD), EDNS_UDP_PAYLOAD))


def _header_only(ident: int, flags: int, rcode: Rcode, reason: str = "") -> Response:
    """An error response echoing only ID, opcode and RD, for queries we cannot or will not read."""
    reply_flags = _QR | (flags & (_OPCODE_MASK | _RD)) | rcode
    return Response(HEADER.pack(ident, reply_flags, 0, 0, 0, 0), rcode, reason=reason)


def respond(
    query: bytes, zone: ZoneSnapshot, *, max_udp: int | None = PLAIN_UDP_PAYLOAD
) -> Response | None:
    """Answer one DNS message from ``zone``; None means send nothing.

    ``max_udp`` is the size limit for a UDP client without EDNS; a client's EDNS size (up to
    1232) raises it.  Pass None over TCP, where only the 65535-byte framing limits us.  Answers
    come only from ``zone``: there is no upstream (this machine has no outside network), so
    other names are REFUSED.  Never raises on any input bytes.
    """
    data = bytes(query)
    if len(data) < HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & _QR:
        return None
    if (flags & _OPCODE_MASK) >> 11 != OPCODE.QUERY:
        return _header_only(ident, flags, Rcode.NOTIMP)
    try:
        parsed = read_query(data)
    except MalformedQueryError as exc:
        return _header_only(ident, flags, Rcode.FORMERR, reason=str(exc))
    return _encode(zone, parsed, _resolve(zone, parsed), _size_limit(max_udp, parsed.edns))


def answer(query: bytes, zone: ZoneSnapshot, *, max_udp: int | None = 512) -> bytes | None:
    """The response bytes for ``query`` (see :func:`respond`), or None to drop it."""
    response = respond(query, zone, max_udp=max_udp)
    return None if response is None else response.wire
