"""ServiceAccountTokenReviewAuthenticator against the recorded API server (real HTTP, real client).

The same recorded TokenReviews as the node variant's tests: a pod-bound token of shop/web, the
agent's own token, a token bound to nothing (a legacy Secret token), and refusals.
"""

from __future__ import annotations

import copy

import pytest

from controller.auth import AuthError, WorkloadPrincipal
from controller.auth_kube import NODE_NAME_EXTRA, ServiceAccountTokenReviewAuthenticator
from tests.inprocess.kube_fake import FakeApiServer, recording
from tests.inprocess.token_review_fixtures import Clock, review_server, reviews_sent

REVIEWS = {
    "web-pod-token": "tokenreview-other-sa.json",
    "agent-token": "tokenreview-node.json",
    "legacy-secret-token": "tokenreview-no-node.json",
}
WEB = WorkloadPrincipal(
    "shop", "web", "web-7d4f8b9c6-abcde", "2d4f6a8c-0e1b-4d3f-a5c7-9e1b3d5f7a0c", "node-1"
)


@pytest.fixture
def server():
    yield from review_server(REVIEWS)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def authenticator(server, clock):
    api = server.api_client()
    try:
        yield ServiceAccountTokenReviewAuthenticator(api, clock=clock)
    finally:
        api.close()


reviews = reviews_sent


def review_with(server: FakeApiServer, token: str, change) -> None:
    review = copy.deepcopy(recording("tokenreview-other-sa.json"))
    change(review["status"])
    server.set_token_review(token, review)


def test_a_pod_bound_token_names_its_pod_and_service_account(server, authenticator):
    assert authenticator.authenticate("web-pod-token") == WEB
    [review] = reviews(server)
    assert review["spec"] == {"token": "web-pod-token", "audiences": ["nodemesh"]}


def test_the_agents_token_is_just_another_service_account(authenticator):
    got = authenticator.authenticate("agent-token")
    assert (got.namespace, got.service_account, got.pod) == (
        "nodemesh-system",
        "nodemesh-agent",
        "nodemesh-agent-x7k2p",
    )


def test_a_token_bound_to_no_pod_is_refused(authenticator):
    with pytest.raises(AuthError, match=r"not bound to a pod .*legacy Secret token"):
        authenticator.authenticate("legacy-secret-token")


def test_before_kubernetes_1_30_the_node_is_unknown_but_the_pod_is_enough(server, authenticator):
    review_with(server, "old-cluster-token", lambda s: s["user"]["extra"].pop(NODE_NAME_EXTRA))
    got = authenticator.authenticate("old-cluster-token")
    assert (got.pod, got.uid, got.node) == (WEB.pod, WEB.uid, "")


def test_a_user_that_is_no_service_account_is_refused(server, authenticator):
    review_with(server, "user-token", lambda s: s["user"].update(username="alice@example.com"))
    review_with(
        server, "half-token", lambda s: s["user"].update(username="system:serviceaccount:x")
    )
    for token in ("user-token", "half-token"):
        with pytest.raises(AuthError, match="not a service account"):
            authenticator.authenticate(token)


def test_a_review_without_our_audience_is_refused(server, authenticator):
    review_with(server, "any-audience-token", lambda s: s.pop("audiences"))
    with pytest.raises(AuthError, match="service-account token is not a token for audience"):
        authenticator.authenticate("any-audience-token")


def test_an_expired_token_is_refused_with_the_servers_reason(authenticator):
    with pytest.raises(AuthError, match=r"service-account token rejected .*token is expired"):
        authenticator.authenticate("stale-token")


def test_no_token_is_refused_without_asking(server, authenticator):
    for token in (None, ""):
        with pytest.raises(AuthError, match=r"no service-account token.*NODEMESH_TOKEN_FILE"):
            authenticator.authenticate(token)
    assert reviews(server) == []


def test_positive_answers_are_cached_for_a_minute_by_digest(server, authenticator, clock):
    assert authenticator.authenticate("web-pod-token") == WEB
    clock.now += 59
    assert authenticator.authenticate("web-pod-token") == WEB
    assert len(reviews(server)) == 1
    assert "web-pod-token" not in repr(vars(authenticator))
    clock.now += 2
    authenticator.authenticate("web-pod-token")
    assert len(reviews(server)) == 2


def test_an_unreachable_api_server_is_an_auth_error():
    fake = FakeApiServer().start()
    api = fake.api_client()
    fake.stop()
    try:
        with pytest.raises(AuthError, match="could not verify the service-account token"):
            ServiceAccountTokenReviewAuthenticator(api).authenticate("web-pod-token")
    finally:
        api.close()
