"""What routing decides for one request: forward it (`Forward`) or answer it here (`Reply`).

These are plain values for the I/O shell to execute, in the spirit of mitmproxy's commands: the
router never opens a connection, waits, or sends a byte. `Forward` says which Service port to send
the (possibly rewritten) request to, which copies to fire and forget (mirrors), which timeouts the
rule sets, and how to filter the response on the way back. `Reply` is a response synthesized by the
waypoint itself (a redirect, or Gateway API's 500 for a request with nowhere valid to go), with a
reason from a closed set so metrics and access logs can label it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from waypoint.messages import RequestHead, ResponseHead
from waypoint.routing.headers import HeaderModifier
from waypoint.routing.sources import BackendTarget


class ReplyReason(enum.Enum):
    """Why the waypoint answered instead of forwarding (a telemetry label value)."""

    REDIRECT = "redirect"  # a RequestRedirect filter
    NO_BACKEND = "no_backend"  # the rule has no backendRefs, or every weight is 0
    INVALID_BACKEND = "invalid_backend"  # the chosen backendRef names no usable Service port
    UNSUPPORTED_FILTER = "unsupported_filter"  # an ExtensionRef nodemesh cannot run


@dataclass(frozen=True)
class Reply:
    response: ResponseHead
    reason: ReplyReason
    detail: str = ""  # for logs: which backendRef or filter, and what is wrong with it


@dataclass(frozen=True)
class Timeouts:
    """A rule's timeouts in milliseconds; None: the rule sets none ("0s" also means none)."""

    request_ms: int | None = None  # whole request, client's first byte to response's last
    backend_request_ms: int | None = None  # each attempt at a backend (retries make several)


@dataclass(frozen=True)
class Mirror:
    """A copy of the request to send and forget; its response is read and dropped."""

    target: BackendTarget
    head: RequestHead


@dataclass(frozen=True)
class Forward:
    head: RequestHead  # the request after the rule's and the backend's filters
    target: BackendTarget  # the Service port to load-balance over
    timeouts: Timeouts
    mirrors: tuple[Mirror, ...] = ()
    response_modifiers: tuple[HeaderModifier, ...] = ()  # rule's first, then the backend's

    def filter_response(self, response: ResponseHead) -> ResponseHead:
        """The backend's response as the client must see it (ResponseHeaderModifier filters)."""
        for modifier in self.response_modifiers:
            response = modifier.apply_response(response)
        return response


def error_reply(status: int, reason: ReplyReason, detail: str) -> Reply:
    return Reply(ResponseHead(status=status, headers=(("content-length", "0"),)), reason, detail)
