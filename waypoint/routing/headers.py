"""RequestHeaderModifier and ResponseHeaderModifier: set, add and remove, by case-insensitive name.

Order within one modifier is remove, then set, then add (Envoy's order: removals first, then
additions), so `set` wins over `remove` of the same name and `add` appends to what `set` left.
`add` appends one more field line instead of comma-joining into the existing one: the two are
equivalent under RFC 9110 for every header except Set-Cookie, which joining would corrupt.

The request head keeps Host apart from its headers (`RequestHead.authority`), so setting or adding
"host" rewrites the authority and removing it is ignored: a request always has a host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from waypoint.messages import Headers, RequestHead, ResponseHead

HOST = "host"


@dataclass(frozen=True)
class HeaderModifier:
    set: Headers = ()  # (lower-case name, value): replaces every value of that name
    add: Headers = ()  # (lower-case name, value): appended after the existing values
    remove: tuple[str, ...] = ()  # lower-case names

    def apply(self, headers: Headers) -> Headers:
        replaced = set(self.remove) | {name for name, _ in self.set}
        kept = tuple((name, value) for name, value in headers if name not in replaced)
        return kept + self.set + self.add

    def apply_request(self, head: RequestHead) -> RequestHead:
        hosts = [value for name, value in self.set + self.add if name == HOST]
        headers = tuple(header for header in self.apply(head.headers) if header[0] != HOST)
        authority = hosts[-1] if hosts else head.authority
        return dataclasses.replace(head, authority=authority, headers=headers)

    def apply_response(self, response: ResponseHead) -> ResponseHead:
        return dataclasses.replace(response, headers=self.apply(response.headers))


def compile_header_modifier(data: Mapping[str, Any]) -> HeaderModifier:
    """A normalized HTTPHeaderFilter; a name repeated within `set` keeps its last value."""
    set_ = {entry["name"].lower(): entry["value"] for entry in data.get("set", ())}
    return HeaderModifier(
        set=tuple(set_.items()),
        add=tuple((entry["name"].lower(), entry["value"]) for entry in data.get("add", ())),
        remove=tuple(name.lower() for name in data.get("remove", ())),
    )
