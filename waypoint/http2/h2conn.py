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
from h2.settings import SettingCodes

from waypoint.http2.events import LocalProtocolError, StreamClosedError
from waypoint.http2.limits import Http2Limits

_DEFAULT_WINDOW = 65_535  # RFC 9113: every window starts here until SETTINGS / WINDOW_UPDATE


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
    """An h2 connection with our settings in its first SETTINGS frame and the big windows."""
    config = h2.config.H2Configuration(
        client_side=client,
        header_encoding=None,
        validate_inbound_headers=False,  # `fields` validates, as stream errors (see there)
    )
    conn = h2.connection.H2Connection(config)
    # Set before the preface so they hold from the first byte the peer sends after our SETTINGS.
    conn.local_settings = h2.settings.Settings(
        client=client,
        initial_values={
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: limits.stream_window,
            SettingCodes.MAX_FRAME_SIZE: limits.max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
        },
    )
    conn.max_inbound_frame_size = limits.max_frame_size
    conn.decoder.max_header_list_size = limits.max_header_list_size
    conn.initiate_connection()
    if limits.connection_window > _DEFAULT_WINDOW:  # the connection window has no SETTING
        conn.increment_flow_control_window(limits.connection_window - _DEFAULT_WINDOW)
    return conn
