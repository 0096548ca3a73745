"""HBONE: the mesh's L4 tunnel, HTTP/2 CONNECT over mutual TLS 1.3 on port 15008.

Layers, bottom up. Without I/O: ``events`` (what a connection reports, and its errors),
``headers`` (authority and ztunnel's headers), ``gate`` (GOAWAY taken out before h2),
``connection`` (what both ends share) and ``protocol`` (the client and server ends). With I/O:
``tls`` (SSL contexts, peer identity), ``tunnel`` (the one asyncio shell and the ``Tunnel``
byte stream it hands out), then ``client`` (the outbound pool) and ``server`` (the inbound
listener).
"""

HBONE_PORT = 15008
