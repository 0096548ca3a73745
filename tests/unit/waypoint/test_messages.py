"""waypoint.messages: RequestHead.with_headers is dataclasses.replace for the headers."""

from __future__ import annotations

from dataclasses import fields, replace

from waypoint.messages import RequestHead


def test_with_headers_keeps_every_other_field():
    # A distinct non-default value per field, so a field with_headers forgot would show.
    head = RequestHead(*(f"value-{f.name}" for f in fields(RequestHead)))
    new = (("x-a", "1"),)
    assert head.with_headers(new) == replace(head, headers=new)
    assert head.with_headers(new).headers == new
