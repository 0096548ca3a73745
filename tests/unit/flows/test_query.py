"""`/debug/flows` query parsing: defaults, bounds, and messages that say what is accepted."""

from __future__ import annotations

import pytest

from nodemesh.flows import FlowQuery, FlowQueryError
from nodemesh.flows.query import DEFAULT_LIMIT, MAX_LIMIT


def test_defaults_read_everything_without_waiting():
    assert FlowQuery.parse({}) == FlowQuery(0, DEFAULT_LIMIT, 0.0)


def test_values_are_parsed_and_the_last_repeat_wins():
    q = FlowQuery.parse({"since": ["3", "7"], "limit": ["10"], "wait": ["2.5"]})
    assert q == FlowQuery(7, 10, 2.5)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": ["x"]}, "since='x' is not a number"),
        ({"limit": ["0"]}, f"1 to {MAX_LIMIT}"),
        ({"limit": [str(MAX_LIMIT + 1)]}, f"1 to {MAX_LIMIT}"),
        ({"wait": ["-1"]}, "wait 0 to"),
        ({"wait": ["nan"]}, "not a number"),
        ({"wait": ["31"]}, "wait 0 to 30"),
    ],
)
def test_bad_values_are_refused_with_what_to_send(query, message):
    with pytest.raises(FlowQueryError, match=message):
        FlowQuery.parse(query)
