"""W3C Trace Context for the waypoint: read the client's trace, continue it upstream, or start one.

Theory of operation. Every request the waypoint forwards becomes one span. `Propagator.propagate`
reads the request's `traceparent` (W3C Trace Context, level 1):

- valid: the waypoint's span joins that trace as a child of the client's span (a fresh span id,
  the same trace id, the client's sampled flag), and `tracestate` is passed on as it came;
- absent or invalid: a new trace starts (new trace and span ids, sampling decided by the injected
  sampler) and any `tracestate` is dropped, because it belonged to a trace we could not read.

The upstream request then carries `traceparent: 00-<trace id>-<waypoint span id>-<flags>`, so the
server's span is the waypoint span's child. `x-request-id` is kept when the client sent a sane
one and generated (a UUID4, as Envoy does) otherwise, so logs of every hop can be joined on it.

Parsing follows the spec's rules exactly (§3.2, §3.3): lower-case hex only, version "ff" and
all-zero ids invalid, version 00 exactly 55 characters, a higher version parsed by its first four
fields when they are followed by the end or a "-" (forward compatibility), and the upstream always
gets version 00, the only one we can vouch for. Only the sampled bit of trace-flags is kept.

Randomness comes from an injected `random_bytes(n)` (os.urandom by default), so tests get exact
ids; nothing here does I/O or keeps global state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from waypoint.messages import Headers, RequestHead

SAMPLED = 0x01
TRACESTATE_MAX_CHARS = 512  # the spec asks to propagate at least this much
TRACESTATE_MAX_MEMBERS = 32  # the spec's limit on list members
REQUEST_ID_MAX_CHARS = 128  # longer client ids are replaced, not forwarded
_HEX = frozenset("0123456789abcdef")
_V00_LENGTH = 55  # "00-" + 32 + "-" + 16 + "-" + 2


class TraceparentError(ValueError):
    """The client's traceparent is not valid W3C Trace Context; a new trace is started instead."""

    def __init__(self, value: str, problem: str) -> None:
        self.value = value
        self.problem = problem
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(
            f"invalid traceparent {shown!r}: {problem}; the waypoint starts a new trace, "
            "so fix the client's tracer to join its spans with the mesh's"
        )


@dataclass(frozen=True)
class TraceContext:
    """One span's place in a trace: what `traceparent` carries, plus `tracestate` as received."""

    trace_id: str  # 32 lower-case hex digits, not all zero
    span_id: str  # 16 lower-case hex digits, not all zero
    flags: int = 0  # trace-flags; only SAMPLED is kept
    tracestate: str = ""  # vendor state, passed on untouched ("" for none)

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    @property
    def traceparent(self) -> str:
        """The header value for this span, always version 00."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self, span_id: str) -> TraceContext:
        """A span in the same trace, with this one as its parent."""
        return replace(self, span_id=span_id)


def _hex_field(value: str, field: str, start: int, width: int) -> str:
    text = value[start : start + width]
    if len(text) != width or not set(text) <= _HEX:
        raise TraceparentError(value, f"{field} must be {width} lower-case hex digits")
    if set(text) == {"0"}:
        raise TraceparentError(value, f"{field} must not be all zeros")
    return text


def parse_traceparent(value: str) -> TraceContext:
    """The TraceContext in a traceparent header value; TraceparentError when invalid."""
    value = value.strip(" \t")
    version = value[:2]
    if len(version) != 2 or not set(version) <= _HEX:
        raise TraceparentError(value, "version must be 2 lower-case hex digits")
    if version == "ff":
        raise TraceparentError(value, "version ff is forbidden")
    if version == "00" and len(value) != _V00_LENGTH:
        raise TraceparentError(value, f"version 00 is exactly {_V00_LENGTH} characters")
    if len(value) < _V00_LENGTH or (len(value) > _V00_LENGTH and value[_V00_LENGTH] != "-"):
        raise TraceparentError(value, "the first four fields are not followed by end or '-'")
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        raise TraceparentError(value, "fields must be separated by '-'")
    trace_id = _hex_field(value, "trace-id", 3, 32)
    span_id = _hex_field(value, "parent-id", 36, 16)
    flags = value[53:55]
    if not set(flags) <= _HEX:
        raise TraceparentError(value, "trace-flags must be 2 lower-case hex digits")
    return TraceContext(trace_id, span_id, int(flags, 16) & SAMPLED)


def bounded_tracestate(values: list[str]) -> str:
    """Every tracestate header joined as one list, or "" when it exceeds the spec's bounds.

    The spec lets a vendor drop a tracestate it cannot carry whole; cutting members out of it
    would need to understand them, so an oversized one is dropped entirely.
    """
    joined = ",".join(v.strip(" \t") for v in values if v.strip(" \t"))
    members = [m for m in joined.split(",") if m.strip(" \t")]
    if len(joined) > TRACESTATE_MAX_CHARS or len(members) > TRACESTATE_MAX_MEMBERS:
        return ""
    return joined


class IdGenerator:
    """Trace, span and request ids from an injectable `random_bytes(n)` (os.urandom-like)."""

    def __init__(self, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random_bytes = random_bytes

    def _nonzero_hex(self, size: int) -> str:
        while True:  # all-zero ids are invalid; with real randomness this loops ~never
            raw = self._random_bytes(size)
            if any(raw):
                return raw.hex()

    def trace_id(self) -> str:
        return self._nonzero_hex(16)

    def span_id(self) -> str:
        return self._nonzero_hex(8)

    def request_id(self) -> str:
        """A random (version 4) UUID in its canonical text form, as Envoy's x-request-id."""
        raw = bytearray(self._random_bytes(16))
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _usable_request_id(value: str | None) -> bool:
    if not value or len(value) > REQUEST_ID_MAX_CHARS:
        return False
    return value.isascii() and value.isprintable()


@dataclass(frozen=True)
class Propagation:
    """What tracing decided for one request: the waypoint's span, its parent, the request id."""

    context: TraceContext  # the waypoint's span; its id is the upstream's parent
    parent_span_id: str | None  # the client's span, or None when this span starts the trace
    request_id: str  # x-request-id for the upstream and the logs
    error: TraceparentError | None = None  # why the client's traceparent was not used

    def upstream_headers(self) -> Headers:
        """Headers to set (replacing any the client sent) on the request sent upstream."""
        headers = [("traceparent", self.context.traceparent)]
        if self.context.tracestate:
            headers.append(("tracestate", self.context.tracestate))
        headers.append(("x-request-id", self.request_id))
        return tuple(headers)


class Propagator:
    """Continues or starts a trace for each request.

    `sample()` decides whether a trace the waypoint starts is sampled (a trace that arrives keeps
    its own flag). The default samples every one; pass e.g. `lambda: rng.random() < 0.01` with
    an injected `random.Random` for Istio's default 1%.
    """

    def __init__(self, ids: IdGenerator, sample: Callable[[], bool] | None = None) -> None:
        self._ids = ids
        self._sample = sample or (lambda: True)

    def propagate(self, head: RequestHead) -> Propagation:
        parent, error = self._incoming(head)
        request_id = head.header("x-request-id")
        if not _usable_request_id(request_id):
            request_id = self._ids.request_id()
        if parent is not None:
            return Propagation(parent.child(self._ids.span_id()), parent.span_id, request_id)
        flags = SAMPLED if self._sample() else 0
        context = TraceContext(self._ids.trace_id(), self._ids.span_id(), flags)
        return Propagation(context, None, request_id, error)

    def _incoming(self, head: RequestHead) -> tuple[TraceContext | None, TraceparentError | None]:
        values = head.header_values("traceparent")
        if not values:
            return None, None
        if len(values) > 1:
            return None, TraceparentError(",".join(values), "sent more than once")
        try:
            parent = parse_traceparent(values[0])
        except TraceparentError as e:
            return None, e
        state = bounded_tracestate(head.header_values("tracestate"))
        return replace(parent, tracestate=state), None
