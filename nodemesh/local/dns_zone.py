"""The cluster DNS records table: Service and pod records validated and indexed into a snapshot.

A :class:`ZoneSnapshot` is built in one go and never changes; a record that is not valid DNS (a
name that is not an RFC 1123 label, an address that is not IPv4, a duplicate Service) is left out
and listed in ``ZoneSnapshot.rejected`` instead of failing the whole build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

CLUSTER_CIDRS = ("198.18.0.0/15",)
"""Addresses of the local cluster, whose reverse zones this server answers for."""

Name = tuple[bytes, ...]
"""A domain name as lower-cased labels, most specific first, without the root label."""

_DNS_LABEL = re.compile(rb"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class ZoneConfigError(ValueError):
    """The caller configured the zone wrongly (domain or CIDR); our side is to blame."""


class _InvalidRecordError(ValueError):
    """One Service or pod record is unusable; it is listed in ``ZoneSnapshot.rejected``."""


@dataclass(frozen=True)
class ServiceRecord:
    """A Service: ``<name>.<namespace>.svc.<domain>`` resolves to its VIP.

    A headless Service (``cluster_ip`` None) resolves to its endpoint IPs instead, as in
    Kubernetes; ``endpoint_ips`` is ignored when there is a VIP.
    """

    name: str
    namespace: str
    cluster_ip: str | None
    endpoint_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodRecord:
    """A pod: ``a-b-c-d.<namespace>.pod.<domain>`` resolves to ``a.b.c.d`` as in Kubernetes."""

    name: str
    namespace: str
    ip: str


@dataclass(frozen=True)
class RejectedRecord:
    """A record left out of a snapshot and why, so the daemon can log or report it."""

    record: ServiceRecord | PodRecord
    reason: str


@dataclass(frozen=True, eq=False)
class ZoneSnapshot:
    """An immutable, indexed copy of every name this server answers for.

    Build it with :meth:`build`; the fields are indexes for :func:`respond` to read.
    """

    domain: Name
    apexes: frozenset[Name]  # the cluster domain and every reverse zone
    addresses: Mapping[Name, tuple[str, ...]]  # A records, sorted numerically
    pointers: Mapping[Name, tuple[Name, ...]]  # PTR targets, sorted
    names: frozenset[Name]  # every existing name, with apexes and empty non-terminals
    serial: int
    rejected: tuple[RejectedRecord, ...]

    @classmethod
    def build(
        cls,
        services: Iterable[ServiceRecord],
        pods: Iterable[PodRecord],
        domain: str = "cluster.local",
        *,
        reverse_cidrs: Iterable[str] = CLUSTER_CIDRS,
        serial: int = 1,
    ) -> ZoneSnapshot:
        """Validate and index the records; bad ones go to ``rejected`` rather than raising.

        ``serial`` only shows in the SOA; pass a counter if anyone compares snapshots by it.
        Raises :class:`ZoneConfigError` for a bad domain, CIDR or serial.
        """
        if not 0 <= serial < 2**32:
            raise ZoneConfigError(f"serial {serial} does not fit the 32-bit SOA field")
        builder = _ZoneBuilder(_parse_domain(domain), _reverse_zones(reverse_cidrs))
        for service in services:
            builder.add_service(service)
        for pod in pods:
            builder.add_pod(pod)
        return builder.finish(serial)

    def lookup(self, name: str) -> tuple[str, ...]:
        """The A addresses of ``name`` (any case, trailing dot optional), for logs and CLIs."""
        return self.addresses.get(_text_name(name), ())


class _ZoneBuilder:
    """Collects validated records for one :meth:`ZoneSnapshot.build` call, then freezes them."""

    def __init__(self, domain: Name, reverse_zones: frozenset[Name]) -> None:
        self.domain = domain
        self.apexes = frozenset({domain, *reverse_zones})
        self.addresses: dict[Name, set[IPv4Address]] = {}
        self.pointers: dict[Name, set[Name]] = {}
        self.rejected: list[RejectedRecord] = []

    def add_service(self, service: ServiceRecord) -> None:
        """Index a Service's A records and its VIP's PTR, or reject the whole Service."""
        try:
            owner = self._owner(service.name, service.namespace, b"svc")
            if owner in self.addresses:
                raise _InvalidRecordError("duplicate Service name in this namespace")
            vip = None if service.cluster_ip is None else _ipv4(service.cluster_ip, "cluster_ip")
            endpoints = {_ipv4(ip, "endpoint ip") for ip in service.endpoint_ips}
        except _InvalidRecordError as exc:
            self.rejected.append(RejectedRecord(service, str(exc)))
            return
        self.addresses[owner] = endpoints if vip is None else {vip}
        if vip is not None:
            self._add_pointer(vip, owner)

    def add_pod(self, pod: PodRecord) -> None:
        """Index a pod's dashed-IP name and the PTR back to it, or reject the pod."""
        try:
            ip = _ipv4(pod.ip, "pod ip")
            owner = self._owner(str(ip).replace(".", "-"), pod.namespace, b"pod")
        except _InvalidRecordError as exc:
            self.rejected.append(RejectedRecord(pod, str(exc)))
            return
        self.addresses.setdefault(owner, set()).add(ip)
        self._add_pointer(ip, owner)

    def finish(self, serial: int) -> ZoneSnapshot:
        """Freeze the indexes and derive the set of existing names."""
        addresses = {n: tuple(str(ip) for ip in sorted(ips)) for n, ips in self.addresses.items()}
        pointers = {n: tuple(sorted(targets)) for n, targets in self.pointers.items()}
        names = set(self.apexes)
        for owner in (*addresses, *pointers):
            names.update(_self_and_ancestors(owner, self.apexes))
        return ZoneSnapshot(
            domain=self.domain,
            apexes=self.apexes,
            addresses=MappingProxyType(addresses),
            pointers=MappingProxyType(pointers),
            names=frozenset(names),
            serial=serial,
            rejected=tuple(self.rejected),
        )

    def _owner(self, first: str, namespace: str, kind: bytes) -> Name:
        return (_label(first, "name"), _label(namespace, "namespace"), kind, *self.domain)

    def _add_pointer(self, ip: IPv4Address, target: Name) -> None:
        # An IP outside the reverse zones gets no PTR: we could not answer for it with authority.
        name = _reverse_name(ip, 4)
        if zone_apex(name, self.apexes) is not None:
            self.pointers.setdefault(name, set()).add(target)


def _label(text: str, what: str) -> bytes:
    """A Kubernetes name as one DNS label (RFC 1123), lower-cased."""
    label = text.lower().encode("utf-8", "replace")
    if not _DNS_LABEL.fullmatch(label):
        raise _InvalidRecordError(f"{what} {text!r} is not a DNS label (RFC 1123)")
    return label


def _ipv4(text: str, what: str) -> IPv4Address:
    """Parse an address; the cluster is IPv4-only, so AAAA is always NODATA."""
    try:
        return IPv4Address(text)
    except ValueError as exc:
        raise _InvalidRecordError(f"{what} {text!r} is not an IPv4 address") from exc


def _parse_domain(domain: str) -> Name:
    """The cluster domain as labels; unlike records, a bad domain is a configuration error."""
    labels = domain.rstrip(".").lower().encode("utf-8", "replace").split(b".")
    if not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ZoneConfigError(f"cluster domain {domain!r} is not a DNS name such as cluster.local")
    return tuple(labels)


def _reverse_zones(cidrs: Iterable[str]) -> frozenset[Name]:
    """The in-addr.arpa zones covering the CIDRs, widened to whole octets (a /15 gives two)."""
    zones: set[Name] = set()
    for cidr in cidrs:
        try:
            network = IPv4Network(cidr)
        except ValueError as exc:
            raise ZoneConfigError(f"reverse CIDR {cidr!r} is not an IPv4 network: {exc}") from exc
        octets = max(1, -(-network.prefixlen // 8))
        zones.update(
            _reverse_name(sub.network_address, octets)
            for sub in network.subnets(new_prefix=octets * 8)
        )
    return frozenset(zones)


def _reverse_name(ip: IPv4Address, octets: int) -> Name:
    return (*reversed(str(ip).encode().split(b".")[:octets]), b"in-addr", b"arpa")


def _text_name(text: str) -> Name:
    stripped = text.rstrip(".").lower()
    return tuple(stripped.encode("utf-8", "replace").split(b".")) if stripped else ()


def zone_apex(name: Name, apexes: frozenset[Name]) -> Name | None:
    """The most specific of our zones containing ``name``, or None if we are not authoritative."""
    for start in range(len(name) + 1):
        if name[start:] in apexes:
            return name[start:]
    return None


def _self_and_ancestors(owner: Name, apexes: frozenset[Name]) -> Iterable[Name]:
    """``owner`` and each name between it and its zone apex, which must all exist."""
    apex = zone_apex(owner, apexes) or ()
    return (owner[start:] for start in range(len(owner) - len(apex) + 1))
