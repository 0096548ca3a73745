"""serialize: the one-match fast path for field values accepts exactly the valid values.

test_outgoing pins what check_fields refuses and why; this pins that `_VALUE_OK` (one regex
match for the common case) agrees with the checks that explain a refusal: no CTL but HTAB
(FIELD_VALUE_BAD), and no SP or HTAB at either end, on every byte and on random values.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from waypoint.http1.serialize import _VALUE_OK
from waypoint.http1.syntax import FIELD_VALUE_BAD


def valid(value: bytes) -> bool:
    """The rule as check_fields spells it out when it refuses."""
    if FIELD_VALUE_BAD.search(value):
        return False
    return not (value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"))


def test_every_byte_alone_inside_and_at_the_ends():
    for byte in range(256):
        b = bytes([byte])
        for value in (b, b"a" + b, b + b"a", b"a" + b + b"a"):
            assert bool(_VALUE_OK.fullmatch(value)) == valid(value), value


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=12) | st.text(" \t\r\nax\x00\x7f\x80é", max_size=12).map(str.encode))
def test_random_values(value):
    assert bool(_VALUE_OK.fullmatch(value)) == valid(value)
