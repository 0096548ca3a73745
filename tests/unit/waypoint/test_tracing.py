"""waypoint.tracing: traceparent parsing per W3C Trace Context, propagation, ids, request ids."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.waypoint.records import PARENT_ID, TRACE_ID, head
from waypoint.tracing import (
    TRACESTATE_MAX_CHARS,
    IdGenerator,
    Propagator,
    TraceContext,
    TraceparentError,
    bounded_tracestate,
    parse_traceparent,
)

VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"  # the spec's own example


def ids(seed=7) -> IdGenerator:
    return IdGenerator(random.Random(seed).randbytes)


class Scripted:
    """random_bytes that returns the given byte strings in order (to force zero ids)."""

    def __init__(self, *chunks: bytes):
        self.chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        chunk = self.chunks.pop(0)
        assert len(chunk) == n
        return chunk


# --- parsing --------------------------------------------------------------------------------------


def test_parses_the_specs_example():
    ctx = parse_traceparent(VALID)
    assert (ctx.trace_id, ctx.span_id, ctx.sampled) == (TRACE_ID, PARENT_ID, True)
    assert ctx.traceparent == VALID


def test_unsampled_flag_and_surrounding_whitespace():
    ctx = parse_traceparent(f" {VALID[:-2]}00\t")
    assert not ctx.sampled
    assert ctx.traceparent.endswith("-00")


def test_only_the_sampled_bit_is_kept():
    assert parse_traceparent(VALID[:-2] + "ff").flags == 1
    assert parse_traceparent(VALID[:-2] + "fe").flags == 0


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (VALID[:-1], "exactly 55"),  # too short
        (VALID + "0", "exactly 55"),  # too long for version 00
        (VALID + "-extra", "exactly 55"),  # version 00 allows nothing after the flags
        ("0A" + VALID[2:], "version"),  # upper-case hex in the version
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", "trace-id"),
        (f"00-{TRACE_ID}-{PARENT_ID.upper()}-01", "parent-id"),
        (f"00-{TRACE_ID}-{PARENT_ID}-0A", "trace-flags"),
        ("ff" + VALID[2:], "forbidden"),
        (f"00-{'0' * 32}-{PARENT_ID}-01", "all zeros"),
        (f"00-{TRACE_ID}-{'0' * 16}-01", "all zeros"),
        (f"00-{TRACE_ID}-{PARENT_ID}_01", "separated"),
        (f"0g-{TRACE_ID}-{PARENT_ID}-01", "version"),
        (f"00-{TRACE_ID[:-1]}z-{PARENT_ID}-01", "trace-id"),
        ("", "version"),
    ],
)
def test_invalid_traceparents(value, problem):
    with pytest.raises(TraceparentError, match=problem) as caught:
        parse_traceparent(value)
    assert "new trace" in str(caught.value)  # the message says what happens next


def test_uppercase_whole_header_is_invalid():
    # "00" survives upper(); the ids do not, and upper-case hex is not allowed anywhere.
    with pytest.raises(TraceparentError, match="trace-id"):
        parse_traceparent(VALID.upper())


def test_future_version_is_read_by_its_first_four_fields():
    ctx = parse_traceparent(f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be")
    assert (ctx.trace_id, ctx.span_id, ctx.sampled) == (TRACE_ID, PARENT_ID, True)
    assert ctx.traceparent == VALID  # and is passed on as version 00
    assert parse_traceparent(f"cc-{TRACE_ID}-{PARENT_ID}-01").trace_id == TRACE_ID


def test_future_version_needs_a_dash_after_the_flags():
    with pytest.raises(TraceparentError, match="followed"):
        parse_traceparent(f"cc-{TRACE_ID}-{PARENT_ID}-01x")


def test_every_proper_prefix_is_invalid():
    for end in range(len(VALID)):
        with pytest.raises(TraceparentError):
            parse_traceparent(VALID[:end])


@given(st.text(alphabet="0123456789abcdefABCDEF-xff ", max_size=80))
def test_any_text_parses_or_raises_traceparent_error(value):
    try:
        ctx = parse_traceparent(value)
    except TraceparentError:
        return
    assert parse_traceparent(ctx.traceparent) == ctx  # whatever parses, round-trips
    assert set(ctx.trace_id) != {"0"} and set(ctx.span_id) != {"0"}


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8), st.booleans())
def test_generated_contexts_round_trip(trace, span, sampled):
    if not any(trace) or not any(span):
        return
    ctx = TraceContext(trace.hex(), span.hex(), int(sampled))
    assert parse_traceparent(ctx.traceparent) == ctx


# --- tracestate -----------------------------------------------------------------------------------


def test_tracestate_is_kept_as_is_and_joined():
    assert bounded_tracestate(["congo=t61rcWkgMzE", " rojo=00f067aa0ba902b7"]) == (
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    )
    assert bounded_tracestate([]) == ""


def test_oversized_tracestate_is_dropped():
    assert bounded_tracestate(["a=" + "x" * TRACESTATE_MAX_CHARS]) == ""
    assert bounded_tracestate([",".join(f"k{i}=v" for i in range(33))]) == ""
    assert bounded_tracestate([",".join(f"k{i}=v" for i in range(32))]) != ""


# --- ids ------------------------------------------------------------------------------------------


def test_ids_have_the_right_sizes_and_are_hex():
    gen = ids()
    assert len(gen.trace_id()) == 32 and len(gen.span_id()) == 16
    int(gen.trace_id(), 16), int(gen.span_id(), 16)


def test_all_zero_ids_are_never_generated():
    gen = IdGenerator(Scripted(bytes(8), bytes(8), b"\x00" * 7 + b"\x01"))
    assert gen.span_id() == "0000000000000001"


def test_request_id_is_a_version_4_uuid():
    rid = IdGenerator(Scripted(b"\xff" * 16)).request_id()
    assert rid == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    rid = IdGenerator(Scripted(bytes(16))).request_id()
    assert rid == "00000000-0000-4000-8000-000000000000"


def test_same_seed_same_ids():
    assert ids(3).trace_id() == ids(3).trace_id()
    assert ids(3).trace_id() != ids(4).trace_id()


# --- propagation ----------------------------------------------------------------------------------


def test_valid_parent_makes_a_child_span_in_the_same_trace():
    request = head(
        headers=(("traceparent", VALID), ("tracestate", "congo=t61"), ("x-request-id", "r-1"))
    )
    p = Propagator(ids()).propagate(request)
    assert p.context.trace_id == TRACE_ID
    assert p.context.span_id not in (PARENT_ID, "0" * 16) and len(p.context.span_id) == 16
    assert p.parent_span_id == PARENT_ID
    assert (p.context.sampled, p.request_id, p.error) == (True, "r-1", None)
    assert dict(p.upstream_headers()) == {
        "traceparent": f"00-{TRACE_ID}-{p.context.span_id}-01",
        "tracestate": "congo=t61",
        "x-request-id": "r-1",
    }


def test_unsampled_parent_stays_unsampled_even_if_the_sampler_says_yes():
    request = head(headers=(("traceparent", VALID[:-2] + "00"),))
    p = Propagator(ids(), sample=lambda: True).propagate(request)
    assert not p.context.sampled


def test_absent_traceparent_starts_a_trace_with_the_samplers_decision():
    started = Propagator(ids(), sample=lambda: False).propagate(head())
    assert started.parent_span_id is None and started.error is None
    assert not started.context.sampled
    assert len(started.context.trace_id) == 32
    assert Propagator(ids(), sample=lambda: True).propagate(head()).context.sampled


def test_invalid_traceparent_starts_a_new_trace_and_drops_tracestate():
    bad = f"00-{'0' * 32}-{PARENT_ID}-01"
    request = head(headers=(("traceparent", bad), ("tracestate", "congo=t61")))
    p = Propagator(ids()).propagate(request)
    assert p.context.trace_id != "0" * 32 and p.parent_span_id is None
    assert isinstance(p.error, TraceparentError)
    assert "tracestate" not in dict(p.upstream_headers())


def test_repeated_traceparent_is_invalid():
    request = head(headers=(("traceparent", VALID), ("traceparent", VALID)))
    p = Propagator(ids()).propagate(request)
    assert p.context.trace_id != TRACE_ID
    assert p.error is not None and "more than once" in str(p.error)


@pytest.mark.parametrize("bad_id", ["", "x" * 129, "line\nbreak", "naïve"])
def test_unusable_request_id_is_replaced(bad_id):
    p = Propagator(IdGenerator(Scripted(bytes(16), b"\x01" * 16, b"\x02" * 8))).propagate(
        head(headers=(("x-request-id", bad_id),))
    )
    assert p.request_id == "00000000-0000-4000-8000-000000000000"


def test_missing_request_id_is_generated_and_stable_per_request():
    p = Propagator(ids()).propagate(head())
    assert len(p.request_id) == 36 and p.request_id[14] == "4"
    assert dict(p.upstream_headers())["x-request-id"] == p.request_id
