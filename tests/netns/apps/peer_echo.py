"""An HTTP/1.1 server that answers every GET with the address of the peer it accepted.

The app's own view of who connected (`getpeername()` of the accepted socket): what an app that
logs client addresses or allowlists by IP would see (source-IP preservation tests).
"""

import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
