"""Reading a DNS query off the wire: the header, one question and an optional EDNS OPT record.

A small bounded reader, not dnslib's parser (see nodemesh.local.dns): it reads only what a query
may hold, never follows compression pointers, and raises :class:`MalformedQueryError` for anything
else, which the caller answers with FORMERR.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dnslib import QTYPE, DNSLabel, DNSQuestion

from nodemesh.local.dns_zone import Name

HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_MAX_LABEL = 63
_MAX_NAME_WIRE = 255


class MalformedQueryError(ValueError):
    """The peer sent a message we cannot read as a query; answered with FORMERR."""


@dataclass(frozen=True)
class Edns:
    """What the client's OPT record tells us (RFC 6891); its options are ignored."""

    udp_payload: int
    version: int
    dnssec_ok: bool


@dataclass(frozen=True)
class Query:
    ident: int
    flags: int
    question: DNSQuestion  # as sent, so the answer echoes the client's letter case (0x20)
    name: Name  # lower-cased for lookups
    edns: Edns | None


def read_query(data: bytes) -> Query:
    """Read the header, the single question and an optional OPT record, with bounded work."""
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if (qdcount, ancount, nscount) != (1, 0, 0) or arcount > 1:
        raise MalformedQueryError(
            f"a query holds one question and at most an OPT record, got section counts "
            f"{qdcount}/{ancount}/{nscount}/{arcount}"
        )
    labels, offset = _read_name(data, HEADER.size)
    if len(data) < offset + 4:
        raise MalformedQueryError("question ends before its type and class")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    edns = _read_opt(data, offset + 4) if arcount else None
    question = DNSQuestion(DNSLabel(labels), qtype, qclass)
    return Query(ident, flags, question, tuple(label.lower() for label in labels), edns)


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


def _read_opt(data: bytes, offset: int) -> Edns:
    """Read the additional record, which in a query we accept only as an EDNS OPT record."""
    fixed = data[offset + 1 : offset + 1 + _RR_FIXED.size]
    if data[offset : offset + 1] != b"\x00" or len(fixed) < _RR_FIXED.size:
        raise MalformedQueryError("additional record is not an OPT record owned by the root")
    rtype, payload, ttl, rdlength = _RR_FIXED.unpack(fixed)
    if rtype != QTYPE.OPT or len(data) < offset + 1 + _RR_FIXED.size + rdlength:
        raise MalformedQueryError("additional record is not a complete OPT record")
    return Edns(udp_payload=payload, version=(ttl >> 16) & 0xFF, dnssec_ok=bool(ttl & 0x8000))
