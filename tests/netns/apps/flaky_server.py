"""An HTTP/1.1 server that answers 503 to every other request (retry tests)."""

import http.server
import itertools
import sys

counter = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        n = next(counter)
        status, body = (503, b"flaky\n") if n % 2 == 0 else (200, b"ok\n")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
