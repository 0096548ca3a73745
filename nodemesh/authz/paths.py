"""Request path normalization for security: one spelling per path, before any policy or route.

A path rule is only as strong as the path it is compared with. `/public/../admin`, `//admin`,
`/%61dmin` and `/./admin` all reach `/admin` on a typical server; compared as sent, each would
dodge a `DENY paths: ["/admin"]`. So the waypoint normalizes every request path once, and both
authorization and routing use the result (and the request is forwarded with it, so the upstream
sees exactly what was checked). This is Envoy's `normalize_path` + `merge_slashes` with
`path_with_escaped_slashes_action: REJECT_REQUEST`, as Istio's stricter path normalization sets:

1. The query ("?..." onward) is not part of the path: policies never see it (Istio).
2. Refused outright, as `PathError` (the waypoint answers 400): a fragment `#`, a raw backslash,
   NUL, control characters, spaces and non-ASCII (none is valid in an RFC 3986 path), a `%` not
   followed by two hex digits, and the encoded separators `%2F` and `%5C` (any case) and `%00`.
   An encoded slash is refused rather than decoded because servers disagree about it: some
   decode it into a separator, some keep it, so no single spelling would be safe.
3. Percent-encoded unreserved characters (ALPHA, DIGIT, `-._~`) are decoded (`/%61dmin` is
   `/admin`, `/%2e%2e/` is `/../`); every other escape keeps its encoding with upper-case hex,
   so `%3a` and `%3A` compare equal (RFC 3986 6.2.2.1-2). One pass only: `%252e` stays `%252e`.
4. Repeated slashes are merged (`//admin` is `/admin`), then dot segments are removed (RFC 3986
   5.2.4; `..` never climbs above the root). Merging first means `/a//../admin` is `/admin`, the
   reading of servers that merge slashes themselves.

What normalization does not do, so write policies with it in mind (as Istio's best-practice
guide says): paths stay case-sensitive (`/ADMIN` is not `/admin`), a trailing slash is kept
(`/admin/` is not `/admin`), and `;` path parameters are kept (`/admin;x` is not `/admin`). A
prefix pattern (`/admin*`) covers all three for a DENY.

`*` (the asterisk-form of `OPTIONS *`) is passed through unchanged.
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_REFUSED_ESCAPES = {
    0x2F: "contains an encoded '/' (%2F)",
    0x5C: "contains an encoded '\\' (%5C)",
    0x00: "contains an encoded NUL (%00)",
}
_ESCAPE = re.compile(r"%(.{0,2})", re.DOTALL)
_HEX = re.compile(r"[0-9A-Fa-f]{2}")
_SLASHES = re.compile(r"/{2,}")


class PathError(ValueError):
    """A request path nodemesh refuses to interpret; the client is to blame (answer 400).

    `reason` says what is wrong ("contains a backslash") in words safe to send back: it never
    echoes the path.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"request path refused: it {reason}; send the path with only RFC 3986 characters "
            "and a literal '/' between segments"
        )
        self.reason = reason


def normalize_path(raw: str) -> str:
    """The path of request target `raw`, normalized (see the module docstring), query dropped.

    Raises PathError for a path that must not be served.
    """
    if raw == "*":
        return raw
    path = raw.split("?", 1)[0]
    if not path.startswith("/"):
        raise PathError("does not start with '/' (only origin-form request targets are routed)")
    _check_characters(path)
    decoded = _ESCAPE.sub(_decode_escape, path)
    return _remove_dot_segments(_SLASHES.sub("/", decoded))


def normalize_target(raw: str) -> str:
    """`raw` with its path normalized and its query kept as sent: what to forward upstream."""
    path = normalize_path(raw)
    _, mark, query = raw.partition("?")
    return path + mark + query


def _check_characters(path: str) -> None:
    for char in path:
        if char == "#":
            raise PathError("contains a fragment ('#'), which clients must not send")
        if char == "\\":
            raise PathError("contains a backslash, which servers disagree about")
        if not ("!" <= char <= "~"):
            raise PathError("contains a space, control or non-ASCII character; percent-encode it")


def _decode_escape(escape: re.Match[str]) -> str:
    digits = escape.group(1)
    if not _HEX.fullmatch(digits):
        raise PathError("contains a '%' not followed by two hex digits")
    byte = int(digits, 16)
    if byte in _REFUSED_ESCAPES:
        raise PathError(_REFUSED_ESCAPES[byte])
    return chr(byte) if byte in _UNRESERVED else "%" + digits.upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path whose slashes are already merged."""
    output: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
            continue
        if last:
            output.append("")  # "/a/.." is "/", "/a/." is "/a/": the path ends in a directory
    return "/" + "/".join(output)
