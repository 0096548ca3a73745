"""`meshctl trace --follow` filters: which flow events a reader wants to see.

Theory of operation: a filter is a frozen set of optional conditions, all of which must hold
(Hubble's `observe` flags work the same way). Names are matched as an operator types them:

- `--from POD`: the event's source workload. "name" matches that pod in `-n`'s namespace, or in
  any namespace when `-n` is not given; "namespace/name" names it exactly.
- `--to POD|SVC`: the destination workload, or the Service the client addressed (by name, or
  "namespace/name"), so `--to web` finds traffic to Service web and to pod web alike.
- `-n NS`: with neither `--from` nor `--to`, either side is in NS.
- `--verdict`: FORWARDED, DENIED or ERROR (any case).
- `--http-status`: an exact status ("403") or a class ("5xx"); L4 events have no status and
  never match.

`FlowFilter.parse` turns the CLI's strings into a filter and raises FlowFilterError, with what
to type instead, for a value that could never match.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodemesh.flows.event import Endpoint, FlowEvent, FlowVerdict


class FlowFilterError(ValueError):
    """A filter value that can never match; the message shows an accepted spelling."""


@dataclass(frozen=True)
class Name:
    """A workload or Service name as typed: "name" (namespace optional) or "namespace/name"."""

    name: str
    namespace: str | None = None

    @classmethod
    def parse(cls, text: str, default_namespace: str | None) -> Name:
        namespace, slash, name = text.rpartition("/")
        if not name or (slash and not namespace):
            raise FlowFilterError(f"{text!r}: give a name or namespace/name, e.g. shop/web")
        return cls(name, namespace or default_namespace)

    def matches(self, namespace: str | None, name: str | None) -> bool:
        if name != self.name:
            return False
        return self.namespace is None or namespace == self.namespace


@dataclass(frozen=True)
class StatusMatch:
    """An exact HTTP status, or a class such as 5xx (`exact` is then the hundreds digit)."""

    value: int
    is_class: bool = False

    @classmethod
    def parse(cls, text: str) -> StatusMatch:
        text = text.strip().lower()
        if len(text) == 3 and text.endswith("xx") and text[0] in "12345":
            return cls(int(text[0]), is_class=True)
        if text.isdigit() and 100 <= int(text) <= 599:
            return cls(int(text))
        raise FlowFilterError(f"--http-status {text!r}: give a status (403) or a class (5xx)")

    def matches(self, status: int) -> bool:
        return status // 100 == self.value if self.is_class else status == self.value


@dataclass(frozen=True)
class FlowFilter:
    """All conditions must hold; a condition left None matches every event."""

    source: Name | None = None
    destination: Name | None = None
    namespace: str | None = None
    verdict: FlowVerdict | None = None
    http_status: StatusMatch | None = None

    @classmethod
    def parse(
        cls,
        *,
        source: str | None = None,
        destination: str | None = None,
        namespace: str | None = None,
        verdict: str | None = None,
        http_status: str | int | None = None,
    ) -> FlowFilter:
        """From the CLI's option values (None for an option not given)."""
        return cls(
            source=Name.parse(source, namespace) if source else None,
            destination=Name.parse(destination, namespace) if destination else None,
            namespace=namespace,
            verdict=_verdict(verdict) if verdict else None,
            http_status=StatusMatch.parse(str(http_status)) if http_status is not None else None,
        )

    def matches(self, event: FlowEvent) -> bool:
        checks = (
            self.source is None or _is(self.source, event.source),
            self.destination is None or self._to(event),
            self._in_namespace(event),
            self.verdict is None or event.verdict is self.verdict,
            self.http_status is None or _status(self.http_status, event),
        )
        return all(checks)

    def _to(self, event: FlowEvent) -> bool:
        assert self.destination is not None
        if _is(self.destination, event.destination):
            return True
        namespace, _, name = (event.service or "").rpartition("/")
        return bool(name) and self.destination.matches(namespace, name)

    def _in_namespace(self, event: FlowEvent) -> bool:
        if self.namespace is None or self.source or self.destination:
            return True  # with --from/--to, -n only qualifies their names
        sides = (event.source.namespace, event.destination.namespace)
        service_ns = (event.service or "").rpartition("/")[0]
        return self.namespace in sides or self.namespace == service_ns


def _is(name: Name, endpoint: Endpoint) -> bool:
    return name.matches(endpoint.namespace, endpoint.name)


def _status(match: StatusMatch, event: FlowEvent) -> bool:
    return event.http is not None and match.matches(event.http.status)


def _verdict(text: str) -> FlowVerdict:
    try:
        return FlowVerdict(text.upper())
    except ValueError:
        known = ", ".join(v.value for v in FlowVerdict)
        raise FlowFilterError(f"--verdict {text!r}: use one of {known}") from None
