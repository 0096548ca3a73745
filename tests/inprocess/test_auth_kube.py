"""TokenReviewAuthenticator against a recorded API server on loopback (real HTTP, real client).

Each token maps to a recorded TokenReview answer; the fake records every request, so caching is
checked by counting the reviews that reached the server.
"""

from __future__ import annotations

import copy

import pytest

from controller.auth import AuthError
from controller.auth_kube import TokenReviewAuthenticator
from tests.inprocess.kube_fake import FakeApiServer, recording
from tests.inprocess.token_review_fixtures import Clock, review_server, reviews_sent

REVIEWS = {
    "agent-token": "tokenreview-node.json",
    "web-pod-token": "tokenreview-other-sa.json",
    "legacy-secret-token": "tokenreview-no-node.json",
}


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
        yield TokenReviewAuthenticator(api, clock=clock)
    finally:
        api.close()


reviews = reviews_sent


def test_an_agent_token_bound_to_its_pod_names_the_node(server, authenticator):
    assert authenticator.authenticate("agent-token") == "node-1"
    [review] = reviews(server)
    assert review["kind"] == "TokenReview"
    assert review["spec"] == {"token": "agent-token", "audiences": ["nodemesh"]}


def test_an_unauthenticated_token_is_refused_with_the_servers_reason(server, authenticator):
    with pytest.raises(AuthError, match=r"rejected by the Kubernetes API: .*token is expired"):
        authenticator.authenticate("stale-token")


def test_another_service_accounts_token_is_refused(authenticator):
    with pytest.raises(AuthError, match=r"system:serviceaccount:shop:web.*not the node agent"):
        authenticator.authenticate("web-pod-token")


def test_a_token_without_a_node_asks_for_a_projected_token(authenticator):
    with pytest.raises(AuthError, match="projected service-account token bound to the agent pod"):
        authenticator.authenticate("legacy-secret-token")


def test_a_review_without_our_audience_is_refused(server, authenticator):
    review = copy.deepcopy(recording("tokenreview-node.json"))
    del review["status"]["audiences"]  # an authenticator that ignored spec.audiences
    server.set_token_review("any-audience-token", review)
    with pytest.raises(AuthError, match="not a token for audience 'nodemesh'"):
        authenticator.authenticate("any-audience-token")


def test_no_token_is_refused_without_asking(server, authenticator):
    for token in (None, ""):
        with pytest.raises(AuthError, match="no node credential"):
            authenticator.authenticate(token)
    assert reviews(server) == []


def test_positive_answers_are_cached_for_a_minute_by_digest(server, authenticator, clock):
    assert authenticator.authenticate("agent-token") == "node-1"
    clock.now += 59
    assert authenticator.authenticate("agent-token") == "node-1"
    assert len(reviews(server)) == 1
    assert "agent-token" not in repr(vars(authenticator))  # only its SHA-256 is kept

    clock.now += 2
    assert authenticator.authenticate("agent-token") == "node-1"
    assert len(reviews(server)) == 2


def test_refusals_are_not_cached(server, authenticator):
    for _ in range(2):
        with pytest.raises(AuthError):
            authenticator.authenticate("stale-token")
    assert len(reviews(server)) == 2


def test_an_unreachable_api_server_is_an_auth_error():
    fake = FakeApiServer().start()
    api = fake.api_client()
    fake.stop()  # nothing listens on its port any more
    try:
        with pytest.raises(AuthError, match="could not verify the node credential"):
            TokenReviewAuthenticator(api).authenticate("agent-token")
    finally:
        api.close()
