"""The `/debug/flows` query string: `since=N&limit=M&wait=S`, parsed and bounded.

Theory of operation: the admin endpoint is a long-poll. A reader passes the last sequence number
it saw (`since`, default: none seen, so the whole ring; negative: the last -N), how many events
it takes at once (`limit`), and how long the component may hold the request open when there is
nothing new (`wait`, seconds). Parsing is pure so both bounds and error messages are tested
without a socket; the I/O shell (`nodemesh.flows_admin`) does the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LIMIT = 1000  # events per answer: one JSON body stays well under a megabyte
DEFAULT_LIMIT = 500
MAX_WAIT = 30.0  # seconds: shorter than any sane client or proxy idle timeout


class FlowQueryError(ValueError):
    """A bad `/debug/flows` query; the message says which parameter and what is accepted."""


@dataclass(frozen=True)
class FlowQuery:
    since: int = 0
    limit: int = DEFAULT_LIMIT
    wait: float = 0.0

    @classmethod
    def parse(cls, query: dict[str, list[str]]) -> FlowQuery:
        """From `urllib.parse.parse_qs` output; the last value of a repeated parameter wins."""
        since = _number(query, "since", int, 0)
        limit = _number(query, "limit", int, DEFAULT_LIMIT)
        wait = _number(query, "wait", float, 0.0)
        if not 1 <= limit <= MAX_LIMIT:
            raise FlowQueryError(f"limit={limit}: ask for 1 to {MAX_LIMIT} events at a time")
        if not 0 <= wait <= MAX_WAIT:
            raise FlowQueryError(f"wait={wait:g}: wait 0 to {MAX_WAIT:g} seconds")
        return cls(since, limit, wait)


def _number(query: dict[str, list[str]], name: str, kind: type, default):
    values = query.get(name)
    if not values:
        return default
    try:
        value = kind(values[-1])
    except ValueError:
        raise FlowQueryError(f"{name}={values[-1]!r} is not a number") from None
    if value != value:  # NaN
        raise FlowQueryError(f"{name}={values[-1]!r} is not a number")
    return value
