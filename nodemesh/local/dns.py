"""Cluster DNS without I/O: the records table and the query → answer function.

Theory of operation
-------------------
Pods resolve Service names exactly as in Kubernetes.  Each pod's resolv.conf names the node
gateway as its only nameserver, with ``search <ns>.svc.cluster.local svc.cluster.local
cluster.local`` and ``options ndots:5``, so glibc asks for search expansions such as
``web.default.default.svc.cluster.local`` before it reaches the name that exists.  Every miss must
be a fast, authoritative NXDOMAIN; a timeout there costs the application seconds per lookup.

The records live in a :class:`ZoneSnapshot`, an immutable index built in one go from Service and
pod records; a bad record rejects only itself (see ``ZoneSnapshot.rejected``).  The I/O shell
(:mod:`nodemesh.local.dns_server`) publishes a new snapshot by swapping one reference, so a query
is answered wholly from the old table or wholly from the new one.

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

Only the question section is read, by a small bounded reader, plus one optional EDNS OPT record;
dnslib builds and encodes the answers.  dnslib's own parser is not used on untrusted bytes: it
raises ``UnicodeDecodeError`` from some record types and ``RecursionError`` on chains of
compression pointers, and a query needs none of what it would parse.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

from dnslib import (
    CLASS,
    EDNS0,
    OPCODE,
    PTR,
    QTYPE,
    RR,
    SOA,
    A,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)

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
CLUSTER_CIDRS = ("198.18.0.0/15",)
"""Addresses of the local cluster, whose reverse zones this server answers for."""

Name = tuple[bytes, ...]
"""A domain name as lower-cased labels, most specific first, without the root label."""

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_QR = 0x8000
_OPCODE_MASK = 0x7800
_RD = 0x0100
_MAX_LABEL = 63
_MAX_NAME_WIRE = 255
_DNS_LABEL = re.compile(rb"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
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


class ZoneConfigError(ValueError):
    """The caller configured the zone wrongly (domain or CIDR); our side is to blame."""


class MalformedQueryError(ValueError):
    """The peer sent a message we cannot read as a query; answered with FORMERR."""


class _InvalidRecordError(ValueError):
    """One Service or pod record is unusable; it is listed in ``ZoneSnapshot.rejected``."""


@dataclass(frozen=True)
class ServiceRecord:
    """A Service: ``<name>.<namespace>.svc.<domain>`` resolves to its VIP.

    A headless Service (``cluster_ip`` None) resolves to its endpoint IPs instead, as in
    Kubernetes; ``endpoint_ips`` is ignored when there is a VIP.
    """

    name: str
    namespace: str
    cluster_ip: str | None
    endpoint_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodRecord:
    """A pod: ``a-b-c-d.<namespace>.pod.<domain>`` resolves to ``a.b.c.d`` as in Kubernetes."""

    name: str
    namespace: str
    ip: str


@dataclass(frozen=True)
class RejectedRecord:
    """A record left out of a snapshot and why, so the daemon can log or report it."""

    record: ServiceRecord | PodRecord
    reason: str


@dataclass(frozen=True, eq=False)
class ZoneSnapshot:
    """An immutable, indexed copy of every name this server answers for.

    Build it with :meth:`build`; the fields are indexes for :func:`respond` to read.
    """

    domain: Name
    apexes: frozenset[Name]  # the cluster domain and every reverse zone
    addresses: Mapping[Name, tuple[str, ...]]  # A records, sorted numerically
    pointers: Mapping[Name, tuple[Name, ...]]  # PTR targets, sorted
    names: frozenset[Name]  # every existing name, with apexes and empty non-terminals
    serial: int
    rejected: tuple[RejectedRecord, ...]

    @classmethod
    def build(
        cls,
        services: Iterable[ServiceRecord],
        pods: Iterable[PodRecord],
        domain: str = "cluster.local",
        *,
        reverse_cidrs: Iterable[str] = CLUSTER_CIDRS,
        serial: int = 1,
    ) -> ZoneSnapshot:
        """Validate and index the records; bad ones go to ``rejected`` rather than raising.

        ``serial`` only shows in the SOA; pass a counter if anyone compares snapshots by it.
        Raises :class:`ZoneConfigError` for a bad domain, CIDR or serial.
        """
        if not 0 <= serial < 2**32:
            raise ZoneConfigError(f"serial {serial} does not fit the 32-bit SOA field")
        builder = _ZoneBuilder(_parse_domain(domain), _reverse_zones(reverse_cidrs))
        for service in services:
            builder.add_service(service)
        for pod in pods:
            builder.add_pod(pod)
        return builder.finish(serial)

    def lookup(self, name: str) -> tuple[str, ...]:
        """The A addresses of ``name`` (any case, trailing dot optional), for logs and CLIs."""
        return self.addresses.get(_text_name(name), ())


class _ZoneBuilder:
    """Collects validated records for one :meth:`ZoneSnapshot.build` call, then freezes them."""

    def __init__(self, domain: Name, reverse_zones: frozenset[Name]) -> None:
        self.domain = domain
        self.apexes = frozenset({domain, *reverse_zones})
        self.addresses: dict[Name, set[IPv4Address]] = {}
        self.pointers: dict[Name, set[Name]] = {}
        self.rejected: list[RejectedRecord] = []

    def add_service(self, service: ServiceRecord) -> None:
        """Index a Service's A records and its VIP's PTR, or reject the whole Service."""
        try:
            owner = self._owner(service.name, service.namespace, b"svc")
            if owner in self.addresses:
                raise _InvalidRecordError("duplicate Service name in this namespace")
            vip = None if service.cluster_ip is None else _ipv4(service.cluster_ip, "cluster_ip")
            endpoints = {_ipv4(ip, "endpoint ip") for ip in service.endpoint_ips}
        except _InvalidRecordError as exc:
            self.rejected.append(RejectedRecord(service, str(exc)))
            return
        self.addresses[owner] = endpoints if vip is None else {vip}
        if vip is not None:
            self._add_pointer(vip, owner)

    def add_pod(self, pod: PodRecord) -> None:
        """Index a pod's dashed-IP name and the PTR back to it, or reject the pod."""
        try:
            ip = _ipv4(pod.ip, "pod ip")
            owner = self._owner(str(ip).replace(".", "-"), pod.namespace, b"pod")
        except _InvalidRecordError as exc:
            self.rejected.append(RejectedRecord(pod, str(exc)))
            return
        self.addresses.setdefault(owner, set()).add(ip)
        self._add_pointer(ip, owner)

    def finish(self, serial: int) -> ZoneSnapshot:
        """Freeze the indexes and derive the set of existing names."""
        addresses = {n: tuple(str(ip) for ip in sorted(ips)) for n, ips in self.addresses.items()}
        pointers = {n: tuple(sorted(targets)) for n, targets in self.pointers.items()}
        names = set(self.apexes)
        for owner in (*addresses, *pointers):
            names.update(_self_and_ancestors(owner, self.apexes))
        return ZoneSnapshot(
            domain=self.domain,
            apexes=self.apexes,
            addresses=MappingProxyType(addresses),
            pointers=MappingProxyType(pointers),
            names=frozenset(names),
            serial=serial,
            rejected=tuple(self.rejected),
        )

    def _owner(self, first: str, namespace: str, kind: bytes) -> Name:
        return (_label(first, "name"), _label(namespace, "namespace"), kind, *self.domain)

    def _add_pointer(self, ip: IPv4Address, target: Name) -> None:
        # An IP outside the reverse zones gets no PTR: we could not answer for it with authority.
        name = _reverse_name(ip, 4)
        if _zone_apex(name, self.apexes) is not None:
            self.pointers.setdefault(name, set()).add(target)


def _label(text: str, what: str) -> bytes:
    """A Kubernetes name as one DNS label (RFC 1123), lower-cased."""
    label = text.lower().encode("utf-8", "replace")
    if not _DNS_LABEL.fullmatch(label):
        raise _InvalidRecordError(f"{what} {text!r} is not a DNS label (RFC 1123)")
    return label


def _ipv4(text: str, what: str) -> IPv4Address:
    """Parse an address; the cluster is IPv4-only, so AAAA is always NODATA."""
    try:
        return IPv4Address(text)
    except ValueError as exc:
        raise _InvalidRecordError(f"{what} {text!r} is not an IPv4 address") from exc


def _parse_domain(domain: str) -> Name:
    """The cluster domain as labels; unlike records, a bad domain is a configuration error."""
    labels = domain.rstrip(".").lower().encode("utf-8", "replace").split(b".")
    if not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ZoneConfigError(f"cluster domain {domain!r} is not a DNS name such as cluster.local")
    return tuple(labels)


def _reverse_zones(cidrs: Iterable[str]) -> frozenset[Name]:
    """The in-addr.arpa zones covering the CIDRs, widened to whole octets (a /15 gives two)."""
    zones: set[Name] = set()
    for cidr in cidrs:
        try:
            network = IPv4Network(cidr)
        except ValueError as exc:
            raise ZoneConfigError(f"reverse CIDR {cidr!r} is not an IPv4 network: {exc}") from exc
        octets = max(1, -(-network.prefixlen // 8))
        zones.update(
            _reverse_name(sub.network_address, octets)
            for sub in network.subnets(new_prefix=octets * 8)
        )
    return frozenset(zones)


def _reverse_name(ip: IPv4Address, octets: int) -> Name:
    return (*reversed(str(ip).encode().split(b".")[:octets]), b"in-addr", b"arpa")


def _text_name(text: str) -> Name:
    stripped = text.rstrip(".").lower()
    return tuple(stripped.encode("utf-8", "replace").split(b".")) if stripped else ()


def _zone_apex(name: Name, apexes: frozenset[Name]) -> Name | None:
    """The most specific of our zones containing ``name``, or None if we are not authoritative."""
    for start in range(len(name) + 1):
        if name[start:] in apexes:
            return name[start:]
    return None


def _self_and_ancestors(owner: Name, apexes: frozenset[Name]) -> Iterable[Name]:
    """``owner`` and each name between it and its zone apex, which must all exist."""
    apex = _zone_apex(owner, apexes) or ()
    return (owner[start:] for start in range(len(owner) - len(apex) + 1))


# --- reading a query -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Edns:
    """What the client's OPT record tells us (RFC 6891); its options are ignored."""

    udp_payload: int
    version: int
    dnssec_ok: bool


@dataclass(frozen=True)
class _Query:
    ident: int
    flags: int
    question: DNSQuestion  # as sent, so the answer echoes the client's letter case (0x20)
    name: Name  # lower-cased for lookups
    edns: _Edns | None


def _read_query(data: bytes) -> _Query:
    """Read the header, the single question and an optional OPT record, with bounded work."""
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if (qdcount, ancount, nscount) != (1, 0, 0) or arcount > 1:
        raise MalformedQueryError(
            f"a query holds one question and at most an OPT record, got section counts "
            f"{qdcount}/{ancount}/{nscount}/{arcount}"
        )
    labels, offset = _read_name(data, _HEADER.size)
    if len(data) < offset + 4:
        raise MalformedQueryError("question ends before its type and class")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    edns = _read_opt(data, offset + 4) if arcount else None
    question = DNSQuestion(DNSLabel(labels), qtype, qclass)
    return _Query(ident, flags, question, tuple(label.lower() for label in labels), edns)


def _read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """Read an uncompressed name; a pointer in a query's first name can only be garbage."""
    labels: list[bytes] = []
    wire_length = 1
    while offset < len(data):
        length = data[offset]
        if length == 0:
            return labels, offset + 1
        if length > _MAX_LABEL:
            raise MalformedQueryError("compression pointer or over-long label in the question")
        wire_length += length + 1
        if wire_length > _MAX_NAME_WIRE:
            raise MalformedQueryError("question name is longer than 255 bytes")
        labels.append(data[offset + 1 : offset + 1 + length])
        offset += length + 1
    raise MalformedQueryError("question name runs past the end of the message")


def _read_opt(data: bytes, offset: int) -> _Edns:
    """Read the additional record, which in a query we accept only as an EDNS OPT record."""
    fixed = data[offset + 1 : offset + 1 + _RR_FIXED.size]
    if data[offset : offset + 1] != b"\x00" or len(fixed) < _RR_FIXED.size:
        raise MalformedQueryError("additional record is not an OPT record owned by the root")
    rtype, payload, ttl, rdlength = _RR_FIXED.unpack(fixed)
    if rtype != QTYPE.OPT or len(data) < offset + 1 + _RR_FIXED.size + rdlength:
        raise MalformedQueryError("additional record is not a complete OPT record")
    return _Edns(udp_payload=payload, version=(ttl >> 16) & 0xFF, dnssec_ok=bool(ttl & 0x8000))


# --- deciding the answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    rcode: Rcode
    authoritative: bool = False
    answers: tuple[tuple[int, object], ...] = ()  # (rtype, dnslib rdata); owner is the qname
    soa_apex: Name | None = None  # zone whose SOA goes in authority, for negative caching


def _resolve(zone: ZoneSnapshot, query: _Query) -> _Outcome:
    """Decide rcode and records; see the table in the module docstring."""
    if query.edns is not None and query.edns.version > 0:
        return _Outcome(Rcode.BADVERS)
    apex = _zone_apex(query.name, zone.apexes)
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


def _encode(zone: ZoneSnapshot, query: _Query, outcome: _Outcome, limit: int) -> Response:
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


def _size_limit(max_udp: int | None, edns: _Edns | None) -> int:
    """The plain limit, raised to the client's EDNS size (clamped to 512..1232) if it sent one."""
    if max_udp is None:
        return MAX_MESSAGE
    if edns is None:
        return max_udp
    return max(max_udp, min(max(edns.udp_payload, PLAIN_UDP_PAYLOAD), EDNS_UDP_PAYLOAD))


def _header_only(ident: int, flags: int, rcode: Rcode, reason: str = "") -> Response:
    """An error response echoing only ID, opcode and RD, for queries we cannot or will not read."""
    reply_flags = _QR | (flags & (_OPCODE_MASK | _RD)) | rcode
    return Response(_HEADER.pack(ident, reply_flags, 0, 0, 0, 0), rcode, reason=reason)


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
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & _QR:
        return None
    if (flags & _OPCODE_MASK) >> 11 != OPCODE.QUERY:
        return _header_only(ident, flags, Rcode.NOTIMP)
    try:
        parsed = _read_query(data)
    except MalformedQueryError as exc:
        return _header_only(ident, flags, Rcode.FORMERR, reason=str(exc))
    return _encode(zone, parsed, _resolve(zone, parsed), _size_limit(max_udp, parsed.edns))


def answer(query: bytes, zone: ZoneSnapshot, *, max_udp: int | None = 512) -> bytes | None:
    """The response bytes for ``query`` (see :func:`respond`), or None to drop it."""
    response = respond(query, zone, max_udp=max_udp)
    return None if response is None else response.wire
