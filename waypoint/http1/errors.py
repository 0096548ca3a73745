"""How the HTTP/1.1 codec fails, and whose fault it was.

Theory of operation: every failure is one of two kinds, told apart once, where bytes cross the
boundary. Bytes from the peer that break HTTP/1.1, or exceed a configured limit, raise
`RemoteProtocolError`; the connection is unusable afterwards. A server answers `status_hint`
(400, 413, 414, 431, 501 or 505) and closes. A `ClientConnection` reports 502 instead, because a
proxy that reads a broken response from upstream answers its own client 502 Bad Gateway.

Misuse of the API (an event the current state does not allow, a header value with CR/LF in it, a
body longer than its Content-Length) raises `LocalProtocolError`: a bug in the caller, or
untrusted data it forgot to validate. Nothing was written and the state did not change, so the
caller can still send something else (a 502 of its own) or close.
"""

from __future__ import annotations


class Http1Error(Exception):
    """Base of the HTTP/1.1 codec's errors."""


class LocalProtocolError(Http1Error):
    """The caller misused the connection object; nothing was written."""


class RemoteProtocolError(Http1Error):
    """The peer broke HTTP/1.1 or a limit; answer `status_hint` (server side) and close."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint
