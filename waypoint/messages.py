"""Protocol-neutral request and response heads: what routing, authorization and telemetry read.

The HTTP/1.1 and HTTP/2 codecs each speak their own events; the proxy core converts a decoded
request into one `RequestHead` so every layer above the codecs (routes, filters, authorization,
metrics, tracing) is written once and never asks which protocol carried the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RequestHead:
    """One request as the layers above the codec see it.

    Header names are lower-case, hop-by-hop headers (Connection, Keep-Alive, TE except "trailers",
    Transfer-Encoding, Upgrade, Proxy-*) are already removed, and HTTP/2 pseudo-headers are carried
    in the fields below instead of in `headers`.
    """

    method: str
    # "http" or "https": the scheme the client used (":scheme", or "http" for HTTP/1.1).
    scheme: str
    # Host (HTTP/1.1) or ":authority" (HTTP/2), as sent, port included when sent.
    authority: str
    # Path and query, origin-form ("/a/b?x=1"); "*" for OPTIONS *.
    path: str
    headers: Headers = ()
    # "HTTP/1.0", "HTTP/1.1" or "HTTP/2": for telemetry and for choosing upstream framing.
    protocol: str = "HTTP/1.1"

    def with_headers(self, headers: Headers) -> RequestHead:
        """This head with `headers`: `dataclasses.replace(self, headers=headers)` without its
        per-call field introspection (once per request upstream). Name every field here."""
        return RequestHead(
            self.method, self.scheme, self.authority, self.path, headers, self.protocol
        )

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of header `name` (lower-case), in order."""
        return [value for key, value in self.headers if key == name]

    @property
    def path_only(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The raw query string after "?", or ""."""
        parts = self.path.split("?", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclass(frozen=True)
class ResponseHead:
    """One final (non-1xx) response head; header names lower-case, hop-by-hop removed."""

    status: int
    headers: Headers = ()
    reason: str = ""


@dataclass(frozen=True)
class Peer:
    """Who sent the request to the waypoint, as the HBONE layer proved it."""

    # SPIFFE identity from the verified client certificate; None for none.
    identity: str | None
    # Original source address (HBONE Forwarded header, else the TCP peer).
    address: tuple[str, int]
    # The original destination the client dialled (HBONE :authority).
    destination: tuple[str, int]
    extra: dict[str, str] = field(default_factory=dict)
