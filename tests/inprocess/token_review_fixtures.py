"""Shared by the TokenReview authenticator tests: a recorded API server and a settable clock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from tests.inprocess.kube_fake import TOKEN_REVIEWS, FakeApiServer, recording


class Clock:
    """A clock the test moves by hand (`clock.now += 61`), for the review cache's expiry."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def review_server(reviews: Mapping[str, str]) -> Iterator[FakeApiServer]:
    """A fake API server answering each token with its recorded TokenReview (a fixture body)."""
    fake = FakeApiServer().start()
    for token, name in reviews.items():
        fake.set_token_review(token, recording(name))
    try:
        yield fake
    finally:
        fake.stop()


def reviews_sent(server: FakeApiServer) -> list[dict]:
    """The TokenReviews that reached the server (what the cache did not answer)."""
    return [r.body for r in server.requests if r.method == "POST" and r.path == TOKEN_REVIEWS]
