"""Sends raw bytes (argv[2], Python escapes) to argv[1] host:port; prints the status line and
whether the connection was closed afterwards, as JSON."""

import json
import socket
import sys

host, port = sys.argv[1].rsplit(":", 1)
payload = sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
sock = socket.create_connection((host, int(port)), timeout=10)
sock.sendall(payload)
data = b""
while True:
    chunk = sock.recv(65536)
    if not chunk:
        break
    data += chunk
print(json.dumps({"status": data.split(b"\r\n", 1)[0].decode(), "closed": True}))
