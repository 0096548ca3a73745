"""The client side's token reading: what a waypoint does before it can bootstrap."""

from __future__ import annotations

import pytest

from nodemesh.controlplane import TokenFileError, read_token


def test_the_token_is_read_without_surrounding_whitespace(tmp_path):
    path = tmp_path / "token"
    path.write_text("abc-123_x\n")
    assert read_token(path) == "abc-123_x"
    assert read_token(str(path)) == "abc-123_x"


@pytest.mark.parametrize("path", [None, ""])
def test_an_unset_variable_says_what_to_set(path):
    with pytest.raises(TokenFileError, match=r"NODEMESH_TOKEN_FILE is not set.*projected token"):
        read_token(path)


def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(TokenFileError, match=r"cannot read .*nope: No such file"):
        read_token(tmp_path / "nope")


def test_an_empty_file_is_refused(tmp_path):
    (tmp_path / "token").write_text(" \n")
    with pytest.raises(TokenFileError, match="is empty"):
        read_token(tmp_path / "token")
