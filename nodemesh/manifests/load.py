"""Manifest text and files -> validated `Manifest`s, or one `ManifestErrors` holding every problem.

`parse_documents` is pure: text in, manifests out. `load_paths` is the only function here that does
I/O; it reads files, directories (their *.yaml, *.yml and *.json files, sorted by name, not
recursing) and "-" for stdin, then parses each. Neither stops at the first problem: a user running
`meshctl apply -f dir/` sees every error of every file at once, each with file, document number,
object and field.

YAML is read with PyYAML's safe loader, made strict about duplicate keys (YAML forbids them; PyYAML
otherwise keeps the last silently, hiding typos like a second `ports:`). A syntax error ends its
file, because the parser cannot resynchronise, but documents before it are still validated and
reported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from nodemesh.manifests.check import child
from nodemesh.manifests.errors import ManifestError, ManifestErrors
from nodemesh.manifests.model import Manifest
from nodemesh.manifests.validate import validate_document

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
STDIN_SOURCE = "<stdin>"


def parse_documents(text: str, source: str) -> list[Manifest]:
    """Parse YAML (JSON if `source` ends in .json) into manifests; raises ManifestErrors."""
    manifests, errors = _parse(text, source)
    errors.extend(find_duplicates(manifests))
    if errors:
        raise ManifestErrors(errors)
    return manifests


def load_paths(paths: list[str], *, stdin: TextIO | None = None) -> list[Manifest]:
    """Read and parse files, directories and "-" (`stdin`, default sys.stdin); raise ManifestErrors.

    Manifests come back in the order given (directory entries sorted). An object defined twice in
    the set is an error, reported where it appears the second time. A path given twice is read once.
    """
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    files, expand_errors = _expand(paths)
    errors.extend(expand_errors)
    for path in files:
        text, read_error = _read(path, stdin or sys.stdin)
        if read_error is not None:
            errors.append(read_error)
            continue
        file_manifests, file_errors = _parse(text, STDIN_SOURCE if path == STDIN else path)
        manifests.extend(file_manifests)
        errors.extend(file_errors)
    errors.extend(find_duplicates(manifests))
    if errors:
        raise ManifestErrors(errors)
    return manifests


def find_duplicates(manifests: list[Manifest]) -> list[ManifestError]:
    """One error per manifest whose (kind, namespace, name) an earlier manifest already has."""
    first: dict[tuple[str, str, str], Manifest] = {}
    errors = []
    for manifest in manifests:
        earlier = first.setdefault(manifest.key, manifest)
        if earlier is manifest:
            continue
        where = f"{earlier.source} document {earlier.index}"
        if earlier.item is not None:
            where += f" {earlier.field_prefix}"
        field = child(child(manifest.field_prefix, "metadata"), "name")
        message = (
            f"duplicate object: {manifest.kind} {manifest.display_name} is also defined in {where}"
        )
        errors.append(
            ManifestError(
                manifest.source,
                manifest.index,
                manifest.kind,
                manifest.display_name,
                field,
                message,
            )
        )
    return errors


def _parse(text: str, source: str) -> tuple[list[Manifest], list[ManifestError]]:
    if source.endswith(".json"):
        documents, syntax_error = _json_documents(text, source)
    else:
        documents, syntax_error = _yaml_documents(text, source)
    manifests: list[Manifest] = []
    errors: list[ManifestError] = []
    for index, document in enumerate(documents, start=1):
        try:
            document_manifests, document_errors = validate_document(document, source, index)
        except RecursionError:
            document_manifests = []
            document_errors = [ManifestError(source, index, None, None, None, _TOO_DEEP)]
        manifests.extend(document_manifests)
        errors.extend(document_errors)
    if syntax_error is not None:
        errors.append(syntax_error)
    return manifests, errors


_TOO_DEEP = "document is nested too deeply to process"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges may be overridden by explicit keys
            key = self.construct_object(key_node, deep=deep)
            try:
                first_line = first_lines.get(key)
            except TypeError:
                continue  # an unhashable key: SafeConstructor reports it below
            if first_line is not None:
                message = f"duplicate key {key!r} (first at line {first_line + 1})"
                raise yaml.constructor.ConstructorError(None, None, message, key_node.start_mark)
            first_lines[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_documents(text: str, source: str) -> tuple[list[Any], ManifestError | None]:
    """Every document up to the first syntax error, and that error (or None)."""
    documents: list[Any] = []
    try:
        loader = _StrictLoader(text)  # the reader checks the whole text for control characters
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        message = f"invalid YAML at line {line}: character U+{error.character:04X} is not allowed"
        return documents, _syntax_error(source, 0, message)  # 0: no document could be read
    try:
        while loader.check_data():
            documents.append(loader.get_data())
    except yaml.MarkedYAMLError as error:
        return documents, _syntax_error(source, len(documents) + 1, _describe_marked(error))
    except yaml.YAMLError as error:
        return documents, _syntax_error(source, len(documents) + 1, f"invalid YAML: {error}")
    except (ValueError, OverflowError) as error:  # PyYAML builds ints and dates with int(), date()
        return documents, _syntax_error(source, len(documents) + 1, f"invalid YAML value: {error}")
    except RecursionError:
        return documents, _syntax_error(source, len(documents) + 1, _TOO_DEEP)
    finally:
        loader.dispose()
    return documents, None


def _describe_marked(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    message = f"invalid YAML{where}: {error.problem or error.context}"
    if error.context and error.problem and error.context_mark:
        message += f" ({error.context} at line {error.context_mark.line + 1})"
    return message


def _json_documents(text: str, source: str) -> tuple[list[Any], ManifestError | None]:
    try:
        return [json.loads(text, object_pairs_hook=_unique_pairs)], None
    except json.JSONDecodeError as error:
        message = f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        return [], _syntax_error(source, 1, message)
    except ValueError as error:  # duplicate keys, over-long integers
        return [], _syntax_error(source, 1, f"invalid JSON: {error}")
    except RecursionError:
        return [], _syntax_error(source, 1, _TOO_DEEP)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _syntax_error(source: str, index: int, message: str) -> ManifestError:
    return ManifestError(source, index, None, None, None, message)


def _expand(paths: list[str]) -> tuple[list[str], list[ManifestError]]:
    """Turn the arguments of `-f` into files to read ("-" kept), each once, in order."""
    files: list[str] = []
    errors: list[ManifestError] = []
    seen: set[str] = set()
    for path in paths:
        if path != STDIN and Path(path).is_dir():
            entries = sorted(
                entry
                for entry in Path(path).iterdir()
                if entry.suffix in MANIFEST_SUFFIXES and entry.is_file()
            )
            if not entries:
                message = f"directory has no {', '.join(MANIFEST_SUFFIXES)} files"
                errors.append(ManifestError(path, 0, None, None, None, message))
            candidates = [str(entry) for entry in entries]
        else:
            candidates = [path]
        for candidate in candidates:
            identity = candidate if candidate == STDIN else str(Path(candidate).resolve())
            if identity not in seen:
                seen.add(identity)
                files.append(candidate)
    return files, errors


def _read(path: str, stdin: TextIO) -> tuple[str, ManifestError | None]:
    if path == STDIN:
        return stdin.read(), None
    try:
        return Path(path).read_text(encoding="utf-8-sig"), None
    except FileNotFoundError:
        message = "no such file or directory"
    except UnicodeDecodeError as error:
        message = (
            f"is not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start})"
        )
    except OSError as error:
        message = f"cannot read: {error.strerror or error}"
    return "", ManifestError(path, 0, None, None, None, message)
