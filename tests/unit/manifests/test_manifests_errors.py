"""ManifestError and ManifestErrors: how a problem reads, and that errors survive pickling."""

from __future__ import annotations

import pickle

import pytest

from nodemesh.manifests.errors import ManifestError, ManifestErrors


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (
            ("examples/bad.yaml", 2, "Service", "default/web", "spec.ports[0].port", "too big"),
            "examples/bad.yaml: document 2 (Service default/web): spec.ports[0].port: too big",
        ),
        (
            ("a.yaml", 1, "Namespace", None, "metadata.name", "required"),
            "a.yaml: document 1 (Namespace): metadata.name: required",
        ),
        (
            ("a.yaml", 3, None, None, None, "must be an object"),
            "a.yaml: document 3: must be an object",
        ),
        (("<stdin>", 0, None, None, None, "unreadable"), "<stdin>: unreadable"),
    ],
)
def test_error_text(args, text):
    error = ManifestError(*args)

    assert str(error) == text
    assert (error.source, error.index, error.kind, error.name, error.field, error.message) == args


def test_errors_list_one_per_line_and_pickle():
    first = ManifestError("a.yaml", 1, "Pod", "default/web", "spec", "required field is missing")
    second = ManifestError("b.yaml", 2, None, None, None, "invalid YAML")
    errors = ManifestErrors([first, second])

    copied = pickle.loads(pickle.dumps(errors))

    assert str(errors) == f"{first}\n{second}"
    assert str(copied) == str(errors)
    assert copied.errors[0].field == "spec"


def test_errors_need_at_least_one_error():
    with pytest.raises(ValueError, match="at least one"):
        ManifestErrors([])
