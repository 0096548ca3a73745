"""How the waypoint sets up h2, and the small pieces both connection ends build on. Pure.

h2 gets our limits in its very first SETTINGS frame (so they hold from the first byte the peer
sends after reading them), the large connection window through a WINDOW_UPDATE (it has no
SETTING), and inbound header validation switched off because `fields` does it as stream errors.
h2's exceptions for API misuse are converted here, once, into the caller's errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.exceptions
import h2.settings

from nodemesh.h2setup import new_h2 as configured_h2
from waypoint.http2.events import LocalProtocolError, StreamClosedError
from waypoint.http2.limits import Http2Limits


@dataclass
class StreamState:
    """What is remembered of a live stream; forgotten once both sides ended, or on a reset."""

    headers_sent: bool = False  # our request (client) or final response (server) went out
    local_ended: bool = False  # the caller finished sending (END_STREAM may wait in the backlog)
    remote_ended: bool = False


@contextmanager
def caller_errors() -> Iterator[None]:
    """h2 raises its own errors when its API is misused; they are the caller's to own."""
    try:
        yield
    except h2.exceptions.StreamClosedError as error:
        raise StreamClosedError(f"stream {error.stream_id} is closed") from error
    except h2.exceptions.ProtocolError as error:
        raise LocalProtocolError(str(error) or type(error).__name__) from error


def new_h2(client: bool, limits: Http2Limits) -> h2.connection.H2Connection:
    """An h2 connection with our limits in its first SETTINGS frame and the big windows."""
    return configured_h2(
        client,
        max_concurrent_streams=limits.max_concurrent_streams,
        stream_window=limits.stream_window,
        connection_window=limits.connection_window,
        max_frame_size=limits.max_frame_size,
        max_header_list_size=limits.max_header_list_size,
        validate_inbound_headers=False,  # `fields` validates, as stream errors (see there)
    )
