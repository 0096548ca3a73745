"""HTTPRoute filters as pure functions of a request head: a new head, or a reply to send instead.

A rule's filters and then the chosen backendRef's filters each run as a `FilterChain`, in the order
written. Request-phase filters (header modifier, URLRewrite, RequestRedirect, ExtensionRef) change
or answer the request; ResponseHeaderModifier is collected for the response; RequestMirror picks
copies to send, sampled with the caller's RNG, after the chain has shaped the request.

RequestRedirect builds `Location` as Gateway API says: the filter's scheme, else the request's;
its hostname, else the request's host without its port; its port, else the well-known port of a
scheme the filter sets, else the port the request arrived on (the Service port, GAMMA's listener);
the port is left out when it is the scheme's default. The query string is kept.

An ExtensionRef cannot run here (nodemesh has no extension filters), and Gateway API says such a
filter must not be skipped: requests through it get a 500.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from waypoint.messages import RequestHead, ResponseHead
from waypoint.routing.errors import FieldError
from waypoint.routing.headers import HeaderModifier, compile_header_modifier
from waypoint.routing.outcomes import Mirror, Reply, ReplyReason, error_reply
from waypoint.routing.sources import BackendTarget
from waypoint.routing.urls import (
    DEFAULT_PORTS,
    join_authority,
    join_path,
    replace_prefix,
    split_authority,
    split_path,
)

# backendRef data -> (target, "" or why it cannot be used); ServiceIndex.resolve, bound to a route.
Resolver = Callable[[Mapping[str, Any]], tuple[BackendTarget, str]]


@dataclass(frozen=True)
class FilterContext:
    """What a filter needs besides the request: facts about how the request was matched."""

    prefix: str | None  # the normalized PathPrefix that matched; None for other path matches
    listener_port: int  # the Service port the request arrived on


@dataclass(frozen=True)
class PathModifier:
    full_path: str | None = None  # ReplaceFullPath
    prefix_match: str | None = None  # ReplacePrefixMatch

    def apply(self, path: str, prefix: str | None) -> str:
        if self.full_path is not None:
            return self.full_path
        assert self.prefix_match is not None and prefix is not None  # checked when compiled
        return replace_prefix(path, prefix, self.prefix_match)


@dataclass(frozen=True)
class RequestHeaders:
    modifier: HeaderModifier

    def on_request(self, head: RequestHead, ctx: FilterContext) -> RequestHead | Reply:
        return self.modifier.apply_request(head)


@dataclass(frozen=True)
class ResponseHeaders:
    modifier: HeaderModifier

    def on_request(self, head: RequestHead, ctx: FilterContext) -> RequestHead | Reply:
        return head


@dataclass(frozen=True)
class Redirect:
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathModifier | None = None
    status: int = 302

    def on_request(self, head: RequestHead, ctx: FilterContext) -> RequestHead | Reply:
        location = self.location(head, ctx)
        response = ResponseHead(self.status, (("location", location), ("content-length", "0")))
        return Reply(response, ReplyReason.REDIRECT, location)

    def location(self, head: RequestHead, ctx: FilterContext) -> str:
        scheme = self.scheme or head.scheme
        host = self.hostname or split_authority(head.authority)[0]
        port = self.port
        if port is None and self.scheme:
            port = DEFAULT_PORTS.get(self.scheme)
        if port is None:
            port = ctx.listener_port
        path, query = split_path(head.path)
        if self.path is not None:
            path = self.path.apply(path, ctx.prefix)
        return f"{scheme}://{join_authority(host, port, scheme)}{join_path(path, query)}"


@dataclass(frozen=True)
class Rewrite:
    hostname: str | None = None  # replaces the whole authority
    path: PathModifier | None = None

    def on_request(self, head: RequestHead, ctx: FilterContext) -> RequestHead | Reply:
        authority = self.hostname or head.authority
        path, query = split_path(head.path)
        if self.path is not None:
            path = self.path.apply(path, ctx.prefix)
        return dataclasses.replace(head, authority=authority, path=join_path(path, query))


@dataclass(frozen=True)
class MirrorTo:
    target: BackendTarget
    problem: str  # "" when the target is a usable Service port; unusable mirrors are skipped
    numerator: int = 100  # mirror numerator/denominator of requests
    denominator: int = 100

    def on_request(self, head: RequestHead, ctx: FilterContext) -> RequestHead | Reply:
        return head

    def sampled(self, rng: random.Random) -> bool:
        if self.problem or self.numerator <= 0:
            return False
        if self.numerator >= self.denominator:
            return True
        return rng.randrange(self.denominator) < self.numerator


@dataclass(frozen=True)
class ExtensionRef:
    group: str
    kind: str
    name: str

    def on_request(self, head: RequestHead, ctx: FilterContext) -> RequestHead | Reply:
        detail = f"ExtensionRef {self.group}/{self.kind} {self.name!r} is not supported by nodemesh"
        return error_reply(500, ReplyReason.UNSUPPORTED_FILTER, detail)


Filter = RequestHeaders | ResponseHeaders | Redirect | Rewrite | MirrorTo | ExtensionRef


@dataclass(frozen=True)
class FilterChain:
    filters: tuple[Filter, ...] = ()

    def on_request(self, head: RequestHead, ctx: FilterContext) -> RequestHead | Reply:
        """The request after every filter in order, or the first reply a filter makes."""
        for item in self.filters:
            outcome = item.on_request(head, ctx)
            if isinstance(outcome, Reply):
                return outcome
            head = outcome
        return head

    def mirrors(self, head: RequestHead, rng: random.Random) -> tuple[Mirror, ...]:
        """The copies of `head` (the request after this chain) sampled to be sent."""
        return tuple(
            Mirror(item.target, head)
            for item in self.filters
            if isinstance(item, MirrorTo) and item.sampled(rng)
        )

    @property
    def response_modifiers(self) -> tuple[HeaderModifier, ...]:
        return tuple(item.modifier for item in self.filters if isinstance(item, ResponseHeaders))

    @property
    def rewrites_prefix(self) -> bool:
        """True if a filter needs the matched prefix (ReplacePrefixMatch)."""
        return any(
            isinstance(item, Redirect | Rewrite)
            and item.path is not None
            and item.path.prefix_match is not None
            for item in self.filters
        )


def compile_filters(
    entries: Sequence[Mapping[str, Any]], field: str, resolve: Resolver
) -> FilterChain:
    """A normalized `filters` list (a rule's or a backendRef's) as a FilterChain."""
    return FilterChain(
        tuple(_compile_filter(entry, f"{field}[{i}]", resolve) for i, entry in enumerate(entries))
    )


def _compile_filter(entry: Mapping[str, Any], field: str, resolve: Resolver) -> Filter:
    kind = entry["type"]
    if kind == "RequestHeaderModifier":
        return RequestHeaders(compile_header_modifier(entry["requestHeaderModifier"]))
    if kind == "ResponseHeaderModifier":
        return ResponseHeaders(compile_header_modifier(entry["responseHeaderModifier"]))
    if kind == "RequestRedirect":
        return _compile_redirect(entry["requestRedirect"])
    if kind == "URLRewrite":
        data = entry["urlRewrite"]
        return Rewrite(data.get("hostname"), _compile_path_modifier(data.get("path")))
    if kind == "RequestMirror":
        return _compile_mirror(entry["requestMirror"], resolve)
    if kind == "ExtensionRef":
        data = entry["extensionRef"]
        return ExtensionRef(data.get("group", ""), data["kind"], data["name"])
    raise FieldError(f"{field}.type", f"unknown filter type {kind!r}")


def _compile_redirect(data: Mapping[str, Any]) -> Redirect:
    return Redirect(
        scheme=data.get("scheme"),
        hostname=data.get("hostname"),
        port=data.get("port"),
        path=_compile_path_modifier(data.get("path")),
        status=data.get("statusCode") or 302,
    )


def _compile_path_modifier(data: Mapping[str, Any] | None) -> PathModifier | None:
    if data is None:
        return None
    if data["type"] == "ReplaceFullPath":
        return PathModifier(full_path=data["replaceFullPath"])
    return PathModifier(prefix_match=data["replacePrefixMatch"])


def _compile_mirror(data: Mapping[str, Any], resolve: Resolver) -> MirrorTo:
    target, problem = resolve(data["backendRef"])
    fraction = data.get("fraction")
    if fraction is not None:
        numerator, denominator = fraction["numerator"], fraction.get("denominator", 100)
    else:
        numerator, denominator = data.get("percent", 100), 100
    return MirrorTo(target, problem, numerator, denominator)
