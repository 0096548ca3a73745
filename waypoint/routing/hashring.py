"""Consistent hashing on a request header: the same value goes to the same endpoint.

This is a ring hash (Karger et al.; Envoy's RING_HASH): each endpoint is hashed onto a 64-bit ring
at `replicas` points, and a request goes to the first point at or after the hash of its header
value, wrapping around. Adding an endpoint only takes over the arcs in front of its own points, and
removing one hands its arcs to the next points, so about 1/N of the keys move and no key moves
between two endpoints that both stayed. More replicas even out the arcs at the cost of a bigger
ring (built once per endpoint-list change, looked up by bisection).

Ejected endpoints are skipped by walking on to the next point of a usable endpoint, so an ejection
moves only the ejected endpoint's keys and they come home when it is restored. When the pool
panics (see balancers.py) ejections are ignored. A request without the header has no affinity to
keep and gets a uniformly random endpoint from the caller's RNG, as Envoy does.

Hashes are BLAKE2b truncated to 64 bits, never Python's `hash()`: every worker process and every
waypoint replica must put a key on the same endpoint.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from typing import Generic

from waypoint.messages import RequestHead
from waypoint.routing.balancers import Pool, T

DEFAULT_REPLICAS = 160


def ring_hash(text: str) -> int:
    """A stable 64-bit hash of `text`, the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class ConsistentHash(Generic[T]):
    def __init__(
        self,
        pool: Pool[T],
        header: str,
        rng: random.Random,
        replicas: int = DEFAULT_REPLICAS,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.pool = pool
        self.header = header.lower()
        self.rng = rng
        points = sorted(
            (ring_hash(f"{pool.key(endpoint)}#{replica}"), index)
            for index, endpoint in enumerate(pool.endpoints)
            for replica in range(replicas)
        )
        self._hashes = [point for point, _ in points]
        self._owners = [index for _, index in points]

    def pick(self, head: RequestHead | None = None) -> T | None:
        value = head.header(self.header) if head is not None else None
        return self.pick_for(value)

    def pick_for(self, value: str | None) -> T | None:
        """The endpoint for a hash key (a header value); random when there is none."""
        candidates = self.pool.candidates()
        if not candidates:
            return None
        if value is None:
            return self.rng.choice(candidates)
        ignore_health = len(candidates) == len(self.pool.endpoints)
        start = bisect.bisect_left(self._hashes, ring_hash(value))
        for step in range(len(self._hashes)):
            endpoint = self.pool.endpoints[self._owners[(start + step) % len(self._hashes)]]
            if ignore_health or self.pool.usable(endpoint):
                return endpoint
        return None  # unreachable: a usable endpoint owns some point
