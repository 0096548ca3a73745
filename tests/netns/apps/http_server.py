"""The HTTP/1.1 server the namespaced tests run in pods, each test picking the answer it checks.

    http_server.py PORT [--peer] [--fail-every N] [--delay SECONDS] [--body TEXT]

- default: 200 with TEXT (`ok`) to every GET;
- `--peer`: the body is the address of the peer the app accepted (`getpeername()`), what an app
  that logs client addresses or allowlists by IP would see (source-IP preservation tests);
- `--fail-every N`: every N-th request is answered 503 `flaky` (retry tests);
- `--delay SECONDS`: each answer waits that long first (route timeouts, circuit breaking).
"""

import argparse
import http.server
import itertools
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("--peer", action="store_true")
parser.add_argument("--fail-every", type=int, default=0)
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--body", default="ok\n")
options = parser.parse_args()
counter = itertools.count(1)
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with lock:
            n = next(counter)
        time.sleep(options.delay)
        status, body = 200, options.body.encode()
        if options.peer:
            body = self.client_address[0].encode()
        if options.fail_every and n % options.fail_every == 0:
            status, body = 503, b"flaky\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("0.0.0.0", options.port), Handler)
server.daemon_threads = True
server.serve_forever()
