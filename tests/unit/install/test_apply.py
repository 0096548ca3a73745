"""Install and uninstall requests: planned as data, then sent by the real kubernetes client to a
recording API server on 127.0.0.1 (only the HTTP exchange is fake, not the client)."""

from __future__ import annotations

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from kubernetes import client

from nodemesh.cli.main import cli
from nodemesh.install import apply as kube
from nodemesh.install import common, render
from nodemesh.install.values import Values

DOCS = render.render(Values())


def test_plan_apply_is_server_side_apply_in_render_order():
    requests = kube.plan_apply(DOCS)
    assert [r.body for r in requests] == DOCS
    assert {r.method for r in requests} == {"PATCH"}
    assert all(r.content_type == "application/apply-patch+yaml" for r in requests)
    assert all(dict(r.query) == {"fieldManager": "meshctl", "force": "true"} for r in requests)
    paths = [r.path for r in requests]
    assert paths[0] == (
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        "authorizationpolicies.security.nodemesh.io"
    )
    assert "/api/v1/namespaces/nodemesh-system" in paths
    assert "/apis/apps/v1/namespaces/nodemesh-system/daemonsets/nodemesh-agent" in paths
    assert "/apis/rbac.authorization.k8s.io/v1/clusterroles/nodemesh-controller" in paths


def test_plan_delete_reverses_and_tolerates_404():
    requests = kube.plan_delete(DOCS)
    assert [r.path for r in requests] == [r.path for r in reversed(kube.plan_apply(DOCS))]
    assert all(r.method == "DELETE" and 404 in r.ok_statuses for r in requests)


def test_unknown_kind_is_refused_by_name():
    with pytest.raises(kube.InstallError, match="Ingress: the installer does not know"):
        kube.plan_apply([{"apiVersion": "v1", "kind": "Ingress", "metadata": {"name": "x"}}])


def _fake_ca():
    return kube.CaMaterial("CERT", "KEY", "BUNDLE")


def test_plan_ca_creates_both_when_absent():
    requests = kube.plan_ca("ns", {}, False, False, None, _fake_ca)
    assert [(r.method, r.path) for r in requests] == [
        ("POST", "/api/v1/namespaces/ns/secrets"),
        ("POST", "/api/v1/namespaces/ns/configmaps"),
    ]
    assert requests[0].body["stringData"]["root-key.pem"] == "KEY"
    assert requests[1].body["data"] == {common.TRUST_BUNDLE_KEY: "BUNDLE"}


def test_plan_ca_never_replaces_an_existing_root():
    def refuse():
        raise AssertionError("a new CA was made although one exists")

    assert kube.plan_ca("ns", {}, True, True, "OLD", refuse) == []
    (only,) = kube.plan_ca("ns", {}, True, False, "OLD", refuse)
    assert only.body["data"] == {common.TRUST_BUNDLE_KEY: "OLD"}
    with pytest.raises(kube.InstallError, match=r"has no trust-bundle\.pem"):
        kube.plan_ca("ns", {}, True, False, None, refuse)


def test_new_ca_is_a_root_for_the_trust_domain():
    from cryptography import x509

    ca = kube.new_ca("example.org")
    cert = x509.load_pem_x509_certificate(ca.root_cert_pem.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "BEGIN PRIVATE KEY" in ca.root_key_pem
    assert ca.trust_bundle_pem == ca.root_cert_pem


# ---- over HTTP ---------------------------------------------------------------------------------


class FakeApi(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict, str, object]] = []
        self.answers: dict[tuple[str, str], tuple[int, dict]] = {}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self):
        server: FakeApi = self.server
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        server.requests.append((self.command, url.path, query, self.headers["Content-Type"], body))
        default = {"GET": 404, "POST": 201}.get(self.command, 200)
        status, answer = server.answers.get((self.command, url.path), (default, body or {}))
        if status == 404 and not answer:
            answer = {"kind": "Status", "code": 404, "message": "not found"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


@contextmanager
def fake_api():
    server = FakeApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
        yield server, client.ApiClient(config)
    finally:
        server.shutdown()
        server.server_close()


def test_execute_sends_server_side_apply():
    with fake_api() as (server, api):
        lines = []
        kube.execute(api, kube.plan_apply(DOCS[:4]), lines.append)
    assert [r[0] for r in server.requests] == ["PATCH"] * 4
    _, path, query, content_type, body = server.requests[3]
    assert path == "/api/v1/namespaces/nodemesh-system"
    assert query == {"fieldManager": "meshctl", "force": "true"}
    assert content_type == "application/apply-patch+yaml"
    assert body == DOCS[3]
    assert lines[3] == "Namespace nodemesh-system: applied"


def test_execute_delete_tolerates_404_and_stops_on_403():
    docs = DOCS[-2:]
    with fake_api() as (server, api):
        gone = kube.object_path(docs[1])
        server.answers[("DELETE", gone)] = (404, {})
        lines = []
        kube.execute(api, kube.plan_delete(docs), lines.append)
        assert lines[0] == "DaemonSet nodemesh-system/nodemesh-agent: not found"
        assert lines[1].endswith(": deleted")
        server.answers[("DELETE", gone)] = (403, {"message": "forbidden: you shall not"})
        with pytest.raises(kube.InstallError) as error:
            kube.execute(api, kube.plan_delete(docs), lines.append)
    assert "DaemonSet nodemesh-system/nodemesh-agent: DELETE failed: HTTP 403" in str(error.value)
    assert "needs cluster-admin" in str(error.value)


def test_get_reads_an_existing_secret():
    with fake_api() as (server, api):
        path = "/api/v1/namespaces/ns/secrets/nodemesh-ca"
        data = {"trust-bundle.pem": base64.b64encode(b"PEM").decode()}
        server.answers[("GET", path)] = (200, {"kind": "Secret", "data": data})
        assert kube.get(api, "Secret", "ns", "nodemesh-ca")["data"] == data
        assert kube.get(api, "ConfigMap", "ns", common.TRUST_BUNDLE) is None


def test_meshctl_install_and_uninstall_against_the_fake(tmp_path, monkeypatch):
    with fake_api() as (server, api):
        monkeypatch.setattr("nodemesh.cli.install_cmds._api", lambda kubeconfig, context: api)
        result = CliRunner().invoke(cli, ["install", "--set", "dashboards.enabled=false"])
        assert result.exit_code == 0, result.output
        methods = [(r[0], r[1]) for r in server.requests]
        patches = [p for m, p in methods if m == "PATCH"]
        assert len(patches) == len(render.render(Values())) - 5  # no dashboard ConfigMaps
        posts = [p for m, p in methods if m == "POST"]
        assert posts == [
            "/api/v1/namespaces/nodemesh-system/secrets",
            "/api/v1/namespaces/nodemesh-system/configmaps",
        ]
        secret = next(r[4] for r in server.requests if r[0] == "POST")
        assert "BEGIN PRIVATE KEY" in secret["stringData"]["root-key.pem"]
        assert "BEGIN PRIVATE KEY" not in result.output  # the key is sent, never printed
        server.requests.clear()
        result = CliRunner().invoke(cli, ["uninstall", "--keep-crds"])
        assert result.exit_code == 0, result.output
        deleted = [r[1] for r in server.requests]
        assert deleted[0].endswith("/daemonsets/nodemesh-agent")
        assert deleted[-1] == "/api/v1/namespaces/nodemesh-system"
        assert not [p for p in deleted if "customresourcedefinitions" in p]
