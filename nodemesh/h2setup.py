"""One h2 connection set-up for every HTTP/2 speaker (HBONE tunnels, the waypoint's codec).

Our SETTINGS go in the very first frame (set before the preface, so they hold from the first
byte the peer sends after reading them), server push is off, and the connection window, which
has no SETTING, is opened with a WINDOW_UPDATE up front: large windows are what let one stream
fill a fast path without waiting for credit.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.settings
from h2.settings import SettingCodes

DEFAULT_WINDOW = 65_535  # RFC 9113: every window starts here until SETTINGS / WINDOW_UPDATE


def new_h2(
    client: bool,
    *,
    max_concurrent_streams: int,
    stream_window: int,
    connection_window: int,
    max_frame_size: int,
    max_header_list_size: int,
    validate_inbound_headers: bool = True,
) -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(
        client_side=client,
        header_encoding=None,
        validate_inbound_headers=validate_inbound_headers,
    )
    conn = h2.connection.H2Connection(config)
    conn.local_settings = h2.settings.Settings(
        client=client,
        initial_values={
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: stream_window,
            SettingCodes.MAX_FRAME_SIZE: max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
        },
    )
    conn.max_inbound_frame_size = max_frame_size
    conn.decoder.max_header_list_size = max_header_list_size
    conn.initiate_connection()
    if connection_window > DEFAULT_WINDOW:
        conn.increment_flow_control_window(connection_window - DEFAULT_WINDOW)
    return conn
