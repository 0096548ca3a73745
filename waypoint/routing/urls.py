"""Gateway API's path-element prefix semantics, query parsing and authority handling, as pure text.

A PathPrefix is compared element by element: "/foo" matches "/foo" and "/foo/bar" but not
"/foobar", and a trailing "/" in the prefix is ignored ("/foo/" is "/foo"). Keeping every prefix in
its normalized form (trailing slashes removed, so "/" becomes "") makes matching one comparison and
makes ReplacePrefixMatch a splice: the request path is `prefix + rest`, where `rest` is "" or starts
with "/", and the rewritten path is `replacement + rest` with the replacement normalized the same
way, and "/" when that leaves nothing. That reproduces every row of Gateway API's
HTTPPathModifier table, including the surprising ones ("/foo/" with prefix "/foo" and replacement
"/" becomes "/", not "//").
"""

from __future__ import annotations

from urllib.parse import unquote

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_prefix(prefix: str) -> str:
    """A PathPrefix value without trailing slashes: "/foo/" -> "/foo", "/" -> ""."""
    return prefix.rstrip("/")


def prefix_matches(prefix: str, path: str) -> bool:
    """True if `path` starts with the normalized `prefix` on a "/" element boundary."""
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or path[len(prefix)] == "/" or prefix == ""


def replace_prefix(path: str, prefix: str, replacement: str) -> str:
    """`path` (which `prefix` matches) with its matched elements replaced by `replacement`."""
    rest = path[len(prefix) :]
    if prefix == "" and not rest.startswith("/"):
        rest = "/" + rest  # only for an odd path like "*": keep the element boundary
    return (normalize_prefix(replacement) + rest) or "/"


def split_path(target: str) -> tuple[str, str]:
    """(path, query) of an origin-form target; the query keeps no "?" and is "" when absent."""
    path, _, query = target.partition("?")
    return path, query


def join_path(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def parse_query(query: str) -> dict[str, str]:
    """Query parameters by name (case-sensitive), percent-decoded; a repeated name keeps its first.

    Gateway API leaves repeated parameters to the implementation; first-wins is what Envoy does.
    "+" is left alone: it means a space only in HTML form bodies, not in RFC 3986 query strings.
    """
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        params.setdefault(unquote(name), unquote(value))
    return params


def split_authority(authority: str) -> tuple[str, int | None]:
    """(host, port) of a Host/:authority value; IPv6 brackets are removed, a bad port is None."""
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, ""
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    return host, port


def join_authority(host: str, port: int | None, scheme: str) -> str:
    """An authority for `scheme`, leaving out the port when it is the scheme's default."""
    shown = f"[{host}]" if ":" in host else host
    if port is None or DEFAULT_PORTS.get(scheme) == port:
        return shown
    return f"{shown}:{port}"
