"""How much a peer may make the codec hold, and what each overrun answers.

Theory of operation: every buffer the parser keeps while it waits for a delimiter (a line end, the
blank line after a header section, the CRLF after chunk data) has a ceiling here, and the search
for the delimiter never looks past that ceiling. A slowloris peer that trickles a header line
forever therefore costs at most `max_header_bytes` of memory before it is refused, never more.
The defaults follow Envoy (60 KiB of headers, 100 fields) and common servers (8 KiB request line).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

KiB = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection ceilings; pass one to `ServerConnection` / `ClientConnection`."""

    # Request line (414) or status line, without its CRLF.
    max_request_line: int = 8 * KiB
    # The header field lines and the blank line that ends them (431).
    max_header_bytes: int = 60 * KiB
    # Header fields per message (431); also bounds the number of trailer fields.
    max_header_count: int = 100
    # Bytes of ";name=value" extensions on one chunk-size line (400).
    max_chunk_extensions: int = 1 * KiB
    # The trailer section of a chunked body, blank line included (431).
    max_trailer_bytes: int = 16 * KiB
    # Body bytes per message (413); None for no limit.
    max_body: int | None = None
    # Bytes a peer may pipeline while we have not answered it yet (400). Past it, the caller kept
    # reading although it was told `Paused`.
    max_buffered_while_paused: int = 1024 * KiB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"Limits.{f.name} must be a positive int, got {value!r}")


# Shared by every connection built without its own Limits (frozen, so sharing is safe).
DEFAULT_LIMITS = Limits()
