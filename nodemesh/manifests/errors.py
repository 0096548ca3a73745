"""Typed errors for manifest parsing and validation.

A `ManifestError` is one problem in one document, located the way an operator looks for it: file,
document number, object, field. `meshctl apply` never stops at the first problem; it gathers every
`ManifestError` of every file into one `ManifestErrors`, so a user fixes a manifest in one round
trip instead of one error per run.
"""

from __future__ import annotations


class ManifestError(Exception):
    """One problem in one document of a manifest file.

    Attributes:
        source: the file path as the user gave it, or "<stdin>".
        index: 1-based number of the YAML document in that file; 0 when the problem concerns the
            whole file (it cannot be read, or a directory holds no manifests).
        kind: the object's `kind`, when the document has a string one.
        name: "namespace/name" for namespaced kinds, "name" otherwise, when known.
        field: dotted JSON path of the offending field ("spec.ports[0].port"), or None when the
            problem is the document as a whole.
        message: what is wrong and, where it helps, what to write instead.
    """

    def __init__(
        self,
        source: str,
        index: int,
        kind: str | None,
        name: str | None,
        field: str | None,
        message: str,
    ) -> None:
        # All six go to Exception.args so the error survives pickling (e.g. across a process pool).
        super().__init__(source, index, kind, name, field, message)
        self.source = source
        self.index = index
        self.kind = kind
        self.name = name
        self.field = field
        self.message = message

    def __str__(self) -> str:
        where = self.source
        if self.index:
            where += f": document {self.index}"
        if self.kind and self.name:
            where += f" ({self.kind} {self.name})"
        elif self.kind:
            where += f" ({self.kind})"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class ManifestErrors(Exception):
    """Every problem found in one apply; `errors` is in file, document and field order."""

    def __init__(self, errors: list[ManifestError]) -> None:
        if not errors:
            raise ValueError("ManifestErrors needs at least one ManifestError")
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)
