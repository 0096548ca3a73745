"""The header side of HBONE: authorities, the headers ztunnel sends, reasons. Pure.

HBONE's ``:authority`` is always the original destination as ``ip:port`` (IPv6 in brackets),
never a name: the destination node must not resolve anything to know where to connect.
"""

from __future__ import annotations

import ipaddress

REASON_HEADER = "nodemesh-reason"  # why a tunnel was refused, for the client's logs
MAX_REASON = 512


def parse_authority(authority: str) -> tuple[str, int]:
    """Split ``ip:port`` / ``[ipv6]:port``, HBONE's only authority; a ValueError says why."""
    host, colon, port = authority.rpartition(":")
    if not colon or not host:
        raise ValueError(f"authority {authority[:80]!r} is not ip:port")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        raise ValueError(f"authority {authority[:80]!r}: the port must be 1-65535")
    try:
        if host.startswith("[") and host.endswith("]"):
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv6Address(
                host[1:-1]
            )
        else:
            address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(
            f"authority {authority[:80]!r}: the host must be an IP address (IPv6 in brackets); "
            "HBONE carries the original destination, never a name"
        ) from None
    return str(address), int(port)


def format_authority(ip: str, port: int) -> str:
    address = ipaddress.ip_address(ip)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def tunnel_headers(
    source_ip: str, traceparent: str | None = None, baggage: str | None = None
) -> dict[str, str]:
    """The headers ztunnel puts on a CONNECT: who the original client was, the trace, and the
    client workload's metadata for a waypoint's telemetry (`nodemesh.hbone.baggage`)."""
    address = ipaddress.ip_address(source_ip)
    forwarded = f'for="[{address}]"' if address.version == 6 else f"for={address}"
    headers = {"forwarded": forwarded}
    if traceparent:
        headers["traceparent"] = traceparent
    if baggage:
        headers["baggage"] = baggage
    return headers


def tunnel_key(client: tuple[str, int], server: tuple[str, int], stream_id: int) -> str:
    """Names one CONNECT stream the same way at both ends: "198.18.2.9:41234>198.18.2.7:15008#3".

    The TLS connection's two addresses (the client's ephemeral port makes it unique while it is
    open) plus the stream id: the client reads them as (sockname, peername), the server as
    (peername, sockname). A waypoint's request event and the destination agent's decision carry
    the same key, so a trace joins them exactly, also when the tunnel is reused across requests.
    """
    return f"{format_authority(*client)}>{format_authority(*server)}#{stream_id}"


def header_value(text: str) -> str:
    """Printable ASCII only and bounded: a reason must never break the header block or the log."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[:MAX_REASON])
    return cleaned.strip()


def headers_dict(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Names and values as text (latin-1 cannot fail); repeated names joined as HTTP allows."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers
