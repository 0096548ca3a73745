"""The waypoint's access log: one JSON object per finished request, Istio's JSON keys.

Theory of operation. `access_log(record)` maps a `RequestRecord` to a flat dict (one literal, in
a fixed key order) and `access_log_line` renders it as one compact JSON line for the log sink.
The keys are those of Istio's default JSON access log (Envoy's command operators behind them:
`%START_TIME%`, `%RESPONSE_FLAGS%`, `%UPSTREAM_HOST%`, ...), so existing log pipelines and queries
keep working; nodemesh adds the trace ids, the source and destination workloads and principals,
the gRPC status and the retry count, and, for a denied request only, the policy that denied it,
so a 403 can be told from the application's own.

As in Istio's JSON log, every key is always present, `null` when the value is unknown, so each
line has the same shape and a query never has to ask whether a key exists. Units are Envoy's:
durations in whole milliseconds, bytes are body bytes (head sizes are in the metrics only).
"""

from __future__ import annotations

import functools
import json
import math
from json.encoder import encode_basestring_ascii
from typing import Any

from nodemesh.telemetry import format_address, rfc3339, workload_name
from waypoint.record import RequestRecord, authz_decision


def _ms(seconds: float | None) -> int | None:
    """Whole milliseconds, truncated as Envoy's are (via microseconds, to dodge 0.029 * 1000)."""
    return None if seconds is None else int(seconds * 1_000_000) // 1000


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # stateless; built once, not per line


def start_time(ts: float) -> str:
    """`nodemesh.telemetry.rfc3339(ts)`, with the date and time of day formatted once a second.

    The microseconds are rounded as `datetime.fromtimestamp` rounds them (half to even, on the
    fractional part), so the milliseconds agree to the digit.
    """
    frac, whole = math.modf(ts)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    return f"{_second(int(whole))}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=4)  # requests finish in the same few seconds
def _second(whole: int) -> str:
    return rfc3339(whole)[:-5]  # "...T22:13:20.000Z" without ".000Z"


def _address(address: tuple[str, int] | None) -> str | None:
    return format_address(address) if address is not None else None


def _denial_fields(r: RequestRecord) -> dict[str, Any]:
    """Only for a denied request: who denied it and why (absent otherwise, not null)."""
    if r.authz is None or r.authz.allowed:
        return {}
    return {
        "authz_decision": authz_decision(r.authz),
        "authz_policy": r.authz.policy,
        "authz_rule": r.authz.rule,
        "authz_reason": r.authz.reason or None,
    }


def access_log(r: RequestRecord) -> dict[str, Any]:
    """The request's access log entry as a JSON-ready dict, keys in a fixed order.

    One literal rather than a merge of per-group dicts: this runs once per request on the data
    path, and the intermediate dicts and calls were a third of the line's cost.
    """
    head, src, dst, trace = r.request, r.source, r.destination, r.trace
    entry = {
        "start_time": start_time(r.start_time),
        "method": head.method,
        "path": head.path,
        "protocol": head.protocol,
        "authority": head.authority,
        "user_agent": head.header("user-agent"),
        "x_forwarded_for": head.header("x-forwarded-for"),
        "request_id": r.request_id or head.header("x-request-id"),
        "bytes_received": r.request_body_bytes,
        "downstream_remote_address": format_address(r.peer.address),
        "downstream_local_address": format_address(r.peer.destination),
        "response_code": r.response_code,
        "grpc_status": r.grpc_status,
        "response_flags": r.flags_label,
        "bytes_sent": r.response_body_bytes,
        "duration": _ms(r.duration),
        "upstream_service_time": _ms(r.upstream_duration),
        "upstream_host": _address(r.upstream_address),
        "upstream_cluster": r.upstream_cluster,
        "route_name": r.route_name,
        "retries": r.retries,
        "trace_id": trace.trace_id if trace else None,
        "span_id": trace.span_id if trace else None,
        "source_workload": workload_name(src) if src is not None else None,
        "source_namespace": src.namespace if src is not None else None,
        "source_principal": r.peer.identity,
        "destination_workload": workload_name(dst) if dst is not None else None,
        "destination_namespace": dst.namespace if dst is not None else None,
        "destination_principal": r.destination_principal,
        "destination_service": r.service.hostname if r.service is not None else None,
        "connection_security_policy": r.security_policy.value,
    }
    if r.authz is not None and not r.authz.allowed:
        entry.update(_denial_fields(r))
    return entry


def access_log_line(r: RequestRecord) -> str:
    """One compact JSON line (no trailing newline), as the sink writes it."""
    return render_line(access_log(r))


# The entry's keys are fixed (two shapes: with and without the denial fields), so the line is a
# template with the keys already encoded and only the values left to encode: the same text
# JSONEncoder writes (compact separators, ASCII escapes), for about half its cost per request.


def render_line(entry: dict[str, Any]) -> str:
    """`entry` as compact JSON, exactly as `json.JSONEncoder(separators=(",", ":"))` writes it."""
    return _template(tuple(entry)) % tuple([_json_value(v) for v in entry.values()])


@functools.lru_cache(maxsize=16)  # memoized: an entry has one of two key shapes
def _template(keys: tuple[str, ...]) -> str:
    fields = ",".join(encode_basestring_ascii(k).replace("%", "%%") + ":%s" for k in keys)
    return "{" + fields + "}"


def _json_value(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    return _ENCODER.encode(value)  # bool, float, anything rarer: the encoder's own spelling
