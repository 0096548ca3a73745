"""Opens a websocket through the mesh, sends two messages, prints the echoes as JSON."""

import json
import sys

from websockets.sync.client import connect

with connect(sys.argv[1], open_timeout=10) as ws:
    answers = []
    for text in ("hello", "x" * 50_000):
        ws.send(text)
        answers.append(ws.recv(timeout=10))
print(json.dumps([a[:20] for a in answers]))
