"""The HTTP/1.1 grammar (RFC 9110 §5.6, RFC 9112) as compiled patterns, shared by both directions.

Theory of operation: parsing and serializing must agree on what a token, a field value or a
request-target is, or the proxy could forward what it would itself refuse (or refuse what it
wrote). Both directions take their character classes from here. Every pattern is linear: no
nested quantifiers over overlapping classes, so hostile input cannot make a match backtrack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# tchar, RFC 9110 §5.6.2.
TOKEN_CHARS = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN = re.compile(rb"[" + TOKEN_CHARS + rb"]+")
# A field value may hold VCHAR, obs-text, SP and HTAB; every other control character is refused.
FIELD_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Visible ASCII except "#": a request-target has no fragment and no spaces, CTLs or raw bytes.
TARGET = re.compile(rb"[\x21\x22\x24-\x7e]+")
VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
SUPPORTED_VERSIONS = (b"1.0", b"1.1")
_REG_NAME = rb"[A-Za-z0-9\-._~!$&'()*+,;=%]"
_IP_LITERAL = rb"\[[0-9A-Fa-f:.]+\]"
# Host field value: uri-host [ ":" port ]; the empty value is legal (RFC 9110 §7.2).
HOST = re.compile(rb"(?:" + _IP_LITERAL + rb"|" + _REG_NAME + rb"*)(?::[0-9]*)?")
# authority-form, the only form CONNECT takes: host ":" port, port required.
AUTHORITY_FORM = re.compile(rb"(?:" + _IP_LITERAL + rb"|" + _REG_NAME + rb"+):[0-9]{1,5}")
# absolute-form prefix: scheme "://" authority; the path that follows is TARGET-checked.
ABSOLUTE_FORM = re.compile(rb"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?]*)")
OWS = b" \t"


def list_elements(values: Iterable[bytes]) -> list[bytes]:
    """The elements of a comma-separated list field, across repeated fields, lower-cased.

    RFC 9110 §5.6.1 lets a list have empty elements ("a, , b"); they carry nothing and go.
    """
    out: list[bytes] = []
    for value in values:
        for element in value.split(b","):
            element = element.strip(OWS)
            if element:
                out.append(element.lower())
    return out


def describe_bad_byte(value: bytes) -> str:
    """Name the first byte FIELD_VALUE_BAD refuses, for an error an operator can act on."""
    match = FIELD_VALUE_BAD.search(value)
    if match is None:
        return "no invalid byte"
    byte = match.group()[0]
    if byte in (0x0D, 0x0A):
        return "a bare CR or LF (only CRLF ends a line)"
    if byte == 0:
        return "a NUL byte"
    return f"control character 0x{byte:02x}"
