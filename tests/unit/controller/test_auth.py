"""Local mode's bootstrap authenticators, fed by the files the local cluster writes."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.auth import (
    AuthError,
    NodeTokenAuthenticator,
    ServiceAccountTokenAuthenticator,
    WorkloadPrincipal,
    bearer_token,
    match_digest,
    principal_from_entry,
)
from nodemesh.local.credentials import PodBinding, PodTokens, digest, pod_tokens_path
from nodemesh.local.state import StateDir

WEB = PodBinding("shop", "web", "web-abc", "uid-web", "node1")
DB = PodBinding("shop", "db", "db-0", "uid-db", "node2")


class Cluster:
    """A local cluster's pod tokens as the runtime writes them, with known token values."""

    def __init__(self, tmp_path, name="c") -> None:
        self.state = StateDir(name, tmp_path)
        self.root = tmp_path / name
        self._n = 0
        self.tokens = PodTokens(self.state, mint=self._mint)

    def _mint(self) -> str:
        self._n += 1
        return f"{self.state.cluster}-token-{self._n}"

    def start(self, binding: PodBinding) -> str:
        path = self.tokens.issue(binding, self.root / "pods" / binding.uid)
        self.tokens.save()
        return path.read_text()

    def delete(self, binding: PodBinding) -> None:
        self.tokens.revoke(binding.uid)
        self.tokens.save()

    def authenticator(self, **kw) -> ServiceAccountTokenAuthenticator:
        return ServiceAccountTokenAuthenticator(pod_tokens_path(self.state), **kw)


def principal(binding: PodBinding) -> WorkloadPrincipal:
    return WorkloadPrincipal(
        binding.namespace, binding.service_account, binding.pod, binding.uid, binding.node
    )


def test_a_pod_token_names_exactly_its_pod(tmp_path):
    cluster = Cluster(tmp_path)
    web, db = cluster.start(WEB), cluster.start(DB)
    auth = cluster.authenticator()
    assert auth.authenticate(web) == principal(WEB)
    assert auth.authenticate(db) == principal(DB)
    assert str(auth.authenticate(web)) == "pod shop/web-abc on node1 (sa web)"


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_says_where_to_find_one(tmp_path, token):
    with pytest.raises(AuthError, match=r"no service-account token.*NODEMESH_TOKEN_FILE"):
        Cluster(tmp_path).authenticator().authenticate(token)


def test_tokens_of_another_cluster_and_unknown_ones_are_refused(tmp_path):
    ours, theirs = Cluster(tmp_path, "ours"), Cluster(tmp_path, "theirs")
    ours.start(WEB)
    foreign = theirs.start(WEB)  # the same pod, in another cluster
    auth = ours.authenticator()
    for token in (foreign, "guess", digest(ours.start(DB))):  # a digest is no token either
        with pytest.raises(AuthError, match="another cluster, or to a pod that is gone"):
            auth.authenticate(token)


def test_a_deleted_pods_token_stops_working_once_the_table_is_rewritten(tmp_path):
    cluster = Cluster(tmp_path)
    web = cluster.start(WEB)
    auth = cluster.authenticator()
    assert auth.authenticate(web).pod == "web-abc"
    cluster.delete(WEB)
    with pytest.raises(AuthError, match="not recognised"):
        auth.authenticate(web)


def test_the_table_is_reloaded_when_replaced_even_with_the_same_mtime(tmp_path):
    cluster = Cluster(tmp_path)
    web = cluster.start(WEB)
    auth = cluster.authenticator()
    auth.authenticate(web)
    path = pod_tokens_path(cluster.state)
    stamp = path.stat()
    db = cluster.start(DB)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # a coarse clock: same mtime
    assert auth.authenticate(db) == principal(DB)


def test_no_table_yet_refuses_every_token(tmp_path):
    with pytest.raises(AuthError, match="not recognised"):
        Cluster(tmp_path).authenticator().authenticate("anything")


def test_a_pod_that_is_gone_is_refused_even_if_the_table_is_stale(tmp_path):
    cluster = Cluster(tmp_path)
    web, db = cluster.start(WEB), cluster.start(DB)
    asked = []

    def exists(p: WorkloadPrincipal) -> bool:
        asked.append(p.uid)
        return p.uid == WEB.uid

    auth = cluster.authenticator(pod_exists=exists)
    assert auth.authenticate(web) == principal(WEB)
    with pytest.raises(AuthError, match=r"pod shop/db-0 on node2 \(sa db\) no longer exists"):
        auth.authenticate(db)
    assert asked == [WEB.uid, DB.uid]


def test_a_failing_existence_check_is_an_auth_error_not_a_crash(tmp_path):
    cluster = Cluster(tmp_path)
    web = cluster.start(WEB)

    def broken(_p):
        raise OSError("runtime.json: I/O error")

    with pytest.raises(AuthError, match="could not check that pod shop/web-abc"):
        cluster.authenticator(pod_exists=broken).authenticate(web)


def test_an_unreadable_table_fails_closed_until_it_is_replaced(tmp_path):
    cluster = Cluster(tmp_path)
    web = cluster.start(WEB)
    auth = cluster.authenticator()
    assert auth.authenticate(web).uid == WEB.uid
    pod_tokens_path(cluster.state).write_text("{not json")
    with pytest.raises(AuthError, match="cannot read its credential table"):
        auth.authenticate(web)
    cluster.tokens.save()
    assert auth.authenticate(web).uid == WEB.uid


def test_a_malformed_entry_is_left_out_alone(tmp_path):
    cluster = Cluster(tmp_path)
    web = cluster.start(WEB)
    path = pod_tokens_path(cluster.state)
    table = json.loads(path.read_text())
    table[digest("broken")] = {"namespace": "shop"}
    path.write_text(json.dumps(table))
    auth = cluster.authenticator()
    assert auth.authenticate(web) == principal(WEB)
    with pytest.raises(AuthError, match="not recognised"):
        auth.authenticate("broken")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("web", "not an object"),
        ({**WEB.to_json(), "uid": 7}, "lacks uid"),
        ({k: v for k, v in WEB.to_json().items() if k != "node"}, "lacks node"),
        ({**WEB.to_json(), "serviceAccount": ""}, "namespace or serviceAccount"),
    ],
)
def test_principal_from_entry_refuses_what_it_cannot_trust(entry, problem):
    with pytest.raises(ValueError, match=problem):
        principal_from_entry(entry)


def test_node_tokens_still_name_their_node_and_refuse_others(tmp_path):
    path = tmp_path / "node-tokens.json"
    path.write_text(json.dumps({digest("t1"): "node1", digest("t2"): "node2"}))
    auth = NodeTokenAuthenticator(path)
    assert [auth.authenticate("t1"), auth.authenticate("t2")] == ["node1", "node2"]
    for token, message in ((None, "no node credential"), ("t3", "not recognised")):
        with pytest.raises(AuthError, match=message):
            auth.authenticate(token)


def test_a_pod_token_is_no_node_credential(tmp_path):
    cluster = Cluster(tmp_path)
    web = cluster.start(WEB)
    (tmp_path / "node-tokens.json").write_text(json.dumps({digest("t1"): "node1"}))
    with pytest.raises(AuthError, match="not recognised"):
        NodeTokenAuthenticator(tmp_path / "node-tokens.json").authenticate(web)


@given(st.dictionaries(st.text(min_size=1), st.integers(), max_size=8), st.text(min_size=1))
def test_match_digest_finds_exactly_the_tokens_in_the_table(by_token, stranger):
    table = {digest(token): value for token, value in by_token.items()}
    for token, value in by_token.items():
        assert match_digest(table, token) == value
    if stranger not in by_token:
        assert match_digest(table, stranger) is None


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ([("authorization", "Bearer abc")], "abc"),
        ([("Authorization", "Bearer  abc ")], "abc"),
        ([("authorization", "Basic abc")], None),
        ([("authorization", "Bearer ")], None),
        ([("x-other", "Bearer abc")], None),
        (None, None),
    ],
)
def test_bearer_token(metadata, token):
    assert bearer_token(metadata) == token
