"""Local credentials: node tokens and pods' service-account tokens, their files and digest table."""

from __future__ import annotations

import itertools
import json
import stat

from nodemesh import controlplane
from nodemesh.local import credentials
from nodemesh.local.credentials import (
    PodBinding,
    PodTokens,
    digest,
    ensure_pod_token,
    pod_recorded,
    pod_token_path,
    pod_tokens_path,
)
from nodemesh.local.state import StateDir, write_json_atomic

WEB = PodBinding("shop", "web", "web-abc", "uid-web", "node1")
DB = PodBinding("shop", "db", "db-0", "uid-db", "node2")


def counting_mint():
    counter = itertools.count(1)
    return lambda: f"token-{next(counter)}"


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_token_file_is_private_and_minted_once(tmp_path):
    mint = counting_mint()
    first = ensure_pod_token(tmp_path / "pod", mint)
    again = ensure_pod_token(tmp_path / "pod", mint)
    path = pod_token_path(tmp_path / "pod")
    assert (first, again) == ("token-1", "token-1")  # a re-adopted pod keeps its token
    assert path == tmp_path / "pod" / "serviceaccount" / "token"
    assert path.read_text() == "token-1"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_an_empty_token_file_left_by_a_crash_is_replaced(tmp_path):
    path = pod_token_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("")
    assert ensure_pod_token(tmp_path, counting_mint()) == "token-1"
    assert path.read_text() == "token-1"


def test_the_default_mint_makes_distinct_urlsafe_tokens(tmp_path):
    tokens = {ensure_pod_token(tmp_path / str(i)) for i in range(5)}
    assert len(tokens) == 5
    assert all(len(t) == 43 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


def test_the_table_maps_digests_to_bindings_and_never_holds_a_token(tmp_path):
    state = StateDir("c", tmp_path)
    tokens = PodTokens(state, counting_mint())
    web_file = tokens.issue(WEB, tmp_path / "pods" / "web")
    tokens.issue(DB, tmp_path / "pods" / "db")
    tokens.save()
    table = json.loads(pod_tokens_path(state).read_text())
    assert table == {
        digest("token-1"): {
            "namespace": "shop",
            "serviceAccount": "web",
            "pod": "web-abc",
            "uid": "uid-web",
            "node": "node1",
        },
        digest("token-2"): DB.to_json(),
    }
    assert web_file.read_text() == "token-1"
    assert "token-1" not in pod_tokens_path(state).read_text()
    assert mode(pod_tokens_path(state)) == 0o600
    assert [p.name for p in pod_tokens_path(state).parent.iterdir()] == ["pod-tokens.json"]


def test_a_revoked_token_leaves_the_table_at_the_next_save(tmp_path):
    state = StateDir("c", tmp_path)
    tokens = PodTokens(state, counting_mint())
    tokens.issue(WEB, tmp_path / "web")
    tokens.issue(DB, tmp_path / "db")
    tokens.save()
    tokens.revoke(WEB.uid)
    tokens.revoke("no-such-uid")  # harmless
    assert len(json.loads(pod_tokens_path(state).read_text())) == 2  # not saved yet
    tokens.save()
    assert json.loads(pod_tokens_path(state).read_text()) == {digest("token-2"): DB.to_json()}


def test_a_restarted_runtime_rebuilds_the_same_table_from_the_token_files(tmp_path):
    state = StateDir("c", tmp_path)
    before = PodTokens(state)
    before.issue(WEB, tmp_path / "web")
    before.issue(DB, tmp_path / "db")
    before.save()
    saved = json.loads(pod_tokens_path(state).read_text())

    after = PodTokens(state, mint=lambda: "must-not-be-minted")
    after.issue(WEB, tmp_path / "web")  # only WEB was re-adopted: DB's netns was gone
    after.save()
    assert json.loads(pod_tokens_path(state).read_text()) == {
        d: e for d, e in saved.items() if e["uid"] == WEB.uid
    }


def test_pod_recorded_follows_the_runtimes_records(tmp_path):
    state = StateDir("c", tmp_path)
    assert not pod_recorded(state, "uid-web")  # no runtime.json yet
    write_json_atomic(state.runtime_file, {"pods": [{"uid": "uid-web", "name": "web-abc"}]})
    assert pod_recorded(state, "uid-web")
    assert not pod_recorded(state, "uid-db")


def test_node_tokens_are_private_and_listed_by_digest(tmp_path):
    state = StateDir("c", tmp_path)
    credentials.create_node_tokens(state, ["node1", "node2"])
    table = json.loads(credentials.digests_path(state).read_text())
    for node in ("node1", "node2"):
        path = credentials.token_path(state, node)
        assert mode(path) == 0o600
        assert table[digest(path.read_text())] == node


def test_the_token_env_var_is_the_one_the_client_reads():
    assert credentials.TOKEN_FILE_ENV == controlplane.TOKEN_FILE_ENV == "NODEMESH_TOKEN_FILE"
