"""nginx on loopback for benchmarks: the backend, and the peer reverse proxy, each in a temp prefix.

Theory of operation: Debian's nginx is built with /etc/nginx, /var/lib/nginx and /run paths; a
benchmark must touch none of them. Each instance therefore runs with `-p <workdir>` and a config
rendered here that names every path it could write (pid, lock, error and temp paths) inside that
workdir, `daemon off` so the `Child` that started it is its master, and one worker, like the
single-process waypoint it is compared with. Keep-alive limits are raised so no connection is
closed mid-run (nginx's default closes after 1,000 requests).

Two roles, two configs (`render_config` is pure; `Nginx` only writes and runs it):
- the backend: a fixed small response, HTTP/1.1 on one port and h2c (prior knowledge; a plain
  `listen ... http2` listener speaks only HTTP/2) on another, no access log;
- the reverse proxy: `proxy_pass` to the backend's HTTP/1.1 port over an upstream keep-alive
  pool, on an HTTP/1.1 port and an h2c port, access log on (to /dev/null, formatted and
  written per request like the waypoint's), as a real proxy runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from perf.bench_procs import BenchError, Child

BODY = "nodemesh bench: a small fixed response, 64 bytes, from nginx...."  # 64 bytes
KEEPALIVE_REQUESTS = 10_000_000


def backend_servers(h1_port: int, h2_port: int) -> list[str]:
    location = f'location / {{ default_type text/plain; return 200 "{BODY}"; }}'
    return [
        f"server {{ listen 127.0.0.1:{h1_port}; access_log off; {location} }}",
        f"server {{ listen 127.0.0.1:{h2_port} http2; access_log off; {location} }}",
    ]


def proxy_servers(h1_port: int, h2_port: int, upstream_port: int) -> list[str]:
    location = (
        "location / { proxy_pass http://backend; proxy_http_version 1.1; "
        'proxy_set_header Connection ""; }'
    )
    upstream = (
        f"upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 32; "
        f"keepalive_requests {KEEPALIVE_REQUESTS}; }}"
    )
    return [
        upstream,
        f"server {{ listen 127.0.0.1:{h1_port}; access_log /dev/null; {location} }}",
        f"server {{ listen 127.0.0.1:{h2_port} http2; access_log /dev/null; {location} }}",
    ]


def render_config(workdir: Path, http: Sequence[str]) -> str:
    """A whole nginx.conf whose every writable path lies under workdir."""
    temp = "\n".join(
        f"  {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    blocks = "\n".join(f"  {block}" for block in http)
    return f"""daemon off;
worker_processes 1;
pid {workdir / "nginx.pid"};
lock_file {workdir / "nginx.lock"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  keepalive_requests {KEEPALIVE_REQUESTS};
  keepalive_timeout 300s;
{temp}
{blocks}
}}
"""


class Nginx(Child):
    """One nginx instance (master + one worker) in its own workdir, listening on `ports`."""

    def __init__(self, name: str, workdir: Path, http: Sequence[str], ports: Sequence[int]):
        binary = shutil.which("nginx")
        if binary is None:
            raise BenchError("nginx not found: apt-get install nginx-light")
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf, self.ports = workdir / "nginx.conf", list(ports)
        self.conf.write_text(render_config(workdir, http))
        argv = [binary, "-p", str(workdir), "-c", str(self.conf), "-e", str(workdir / "error.log")]
        super().__init__(name, argv, workdir / "stderr.log")

    def __enter__(self) -> Nginx:
        super().__enter__()
        try:
            self.wait_listening(self.ports)
        except BaseException:
            self.stop()
            raise
        return self

    def failure(self, what: str) -> BenchError:
        """nginx reports configuration and bind errors in its error log, not on stderr."""
        log = self.conf.parent / "error.log"
        tail = log.read_text(errors="replace").strip()[-800:] if log.exists() else ""
        return BenchError(f"{self.name} {what}: {tail}") if tail else super().failure(what)
