"""parse_documents and load_paths: documents, Lists, syntax errors, duplicates, files and dirs."""

from __future__ import annotations

import io
import json
import textwrap

import pytest

from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.kinds import supported_kinds
from nodemesh.manifests.load import load_paths, parse_documents


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip()


NAMESPACE = yaml_text(
    """
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop}
    """
)
SERVICE = yaml_text(
    """
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec:
      ports: [{port: 80}]
    """
)
BAD_SERVICE = SERVICE.replace("port: 80", "port: 70000")
PORT_ERROR = "must be between 1 and 65535, got 70000"


def error_lines(text: str, source: str = "app.yaml") -> list[str]:
    with pytest.raises(ManifestErrors) as caught:
        parse_documents(text, source)
    return str(caught.value).splitlines()


def test_documents_parse_in_order_with_their_numbers():
    manifests = parse_documents(f"{NAMESPACE}---\n{SERVICE}", "app.yaml")

    assert [(m.kind, m.index, m.source) for m in manifests] == [
        ("Namespace", 1, "app.yaml"),
        ("Service", 2, "app.yaml"),
    ]
    assert manifests[0].namespace is None
    assert manifests[0].key == ("Namespace", "", "shop")


def test_empty_documents_are_skipped_but_counted():
    manifests = parse_documents(f"---\n---\n# only a comment\n---\n{SERVICE}", "app.yaml")

    assert [m.index for m in manifests] == [3]


def test_empty_text_has_no_manifests():
    assert parse_documents("", "app.yaml") == []


def test_errors_of_every_document_are_collected():
    text = f"{BAD_SERVICE}---\n{NAMESPACE}---\n{BAD_SERVICE.replace('web', 'api')}"

    assert error_lines(text) == [
        f"app.yaml: document 1 (Service shop/web): spec.ports[0].port: {PORT_ERROR}",
        f"app.yaml: document 3 (Service shop/api): spec.ports[0].port: {PORT_ERROR}",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- a\n- b\n",
            "app.yaml: document 1: must be an object with apiVersion, kind and "
            "metadata, got a list",
        ),
        (
            "hello\n",
            "app.yaml: document 1: must be an object with apiVersion, kind and metadata, "
            "got string 'hello'",
        ),
        (
            "kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
            "app.yaml: document 1 (Service default/web): apiVersion: required field is missing",
        ),
        (
            "apiVersion: v1\nmetadata: {name: web}\n",
            "app.yaml: document 1: kind: required field is missing",
        ),
        (
            "apiVersion: v1\nkind: Namespace\n",
            "app.yaml: document 1 (Namespace): metadata.name: required field is missing",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n",
            "app.yaml: document 1 (Namespace): metadata.name: required field is missing",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: shop\n",
            "app.yaml: document 1 (Namespace): metadata: must be an object, got string 'shop'",
        ),
        (
            "apiVersion: v1\nkind: 5\nmetadata: {name: a}\n",
            "app.yaml: document 1: kind: must be a string, got integer 5 (quote it if you meant "
            "the string)",
        ),
        (
            "apiVersion: v1\nkind: Deployment\nmetadata: {name: web}\n",
            "app.yaml: document 1 (Deployment default/web): apiVersion: Deployment is served as "
            "apps/v1 by nodemesh, not 'v1'",
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\n",
            "app.yaml: document 1 (VirtualService default/web): kind: unknown kind "
            "'VirtualService'; routing, timeouts and retries are a Gateway API HTTPRoute in "
            "nodemesh; fault injection is a TrafficPolicy (networking.nodemesh.io/v1); "
            f"supported kinds: {', '.join(supported_kinds())}",
        ),
        (
            "apiVersion: v1\nkind: Servce\nmetadata: {name: web}\n",
            "app.yaml: document 1 (Servce default/web): kind: unknown kind 'Servce'; did you mean "
            f"'Service'? supported kinds: {', '.join(supported_kinds())}",
        ),
    ],
)
def test_document_level_errors(text, expected):
    assert error_lines(text) == [expected]


def test_missing_identity_fields_are_all_named():
    assert error_lines("spec: {}\n") == [
        "app.yaml: document 1: apiVersion: required field is missing",
        "app.yaml: document 1: kind: required field is missing",
        "app.yaml: document 1: metadata.name: required field is missing",
    ]


def test_authorization_policy_with_istio_group_names_nodemesh_group():
    text = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny}\n"

    assert error_lines(text) == [
        "app.yaml: document 1 (AuthorizationPolicy default/deny): apiVersion: AuthorizationPolicy "
        "is served as security.nodemesh.io/v1 by nodemesh, not 'security.istio.io/v1'; the spec "
        "is the same as Istio's, only the apiVersion changes"
    ]


def test_yaml_syntax_error_names_line_and_keeps_earlier_documents():
    text = f"{BAD_SERVICE}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\n"

    assert error_lines(text) == [
        f"app.yaml: document 1 (Service shop/web): spec.ports[0].port: {PORT_ERROR}",
        "app.yaml: document 2: invalid YAML at line 11, column 1: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence at line 10)",
    ]


def test_yaml_indentation_error_names_line():
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n labels: {}\n"

    assert error_lines(text) == [
        "app.yaml: document 1: invalid YAML at line 5, column 2: expected <block end>, but found "
        "'<block mapping start>' (while parsing a block mapping at line 1)"
    ]


def test_duplicate_keys_are_refused_with_both_lines():
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n"

    assert error_lines(text) == [
        "app.yaml: document 1: invalid YAML at line 5, column 3: duplicate key 'name' (first at "
        "line 4)"
    ]


def test_merge_keys_may_be_overridden():
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  <<: {name: a}\n  name: b\n"

    assert parse_documents(text, "app.yaml")[0].name == "b"


def test_unusable_yaml_values_are_errors_not_crashes():
    assert error_lines("a: 2024-13-45\n") == [
        "app.yaml: document 1: invalid YAML value: month must be in 1..12"
    ]
    assert error_lines("a: \x00\n") == [
        "app.yaml: invalid YAML at line 1: character U+0000 is not allowed"
    ]
    assert error_lines("[" * 5000) == [
        "app.yaml: document 1: document is nested too deeply to process"
    ]


def test_list_items_are_expanded_with_the_list_document_number():
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}},
    ]
    text = (
        NAMESPACE.replace("shop", "other")
        + "---\n"
        + json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )

    manifests = parse_documents(text, "app.yaml")

    assert [(m.kind, m.index, m.item) for m in manifests] == [
        ("Namespace", 1, None),
        ("Namespace", 2, 0),
        ("ServiceAccount", 2, 1),
    ]


def test_list_item_errors_say_items_index():
    text = yaml_text(
        """
        apiVersion: v1
        kind: List
        items:
        - {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
        - {apiVersion: v1, kind: Service, metadata: {name: web}, spec: {ports: [{port: 70000}]}}
        - 7
        - {apiVersion: v1, kind: List, items: []}
        """
    )

    assert error_lines(text) == [
        f"app.yaml: document 1 (Service default/web): items[1].spec.ports[0].port: {PORT_ERROR}",
        "app.yaml: document 1: items[2]: must be an object with apiVersion, kind and metadata, "
        "got integer 7",
        "app.yaml: document 1 (List): items[3]: a List may not contain another List",
    ]


def test_list_shape_errors():
    assert error_lines("apiVersion: v1\nkind: List\nitems: {}\nextra: 1\n") == [
        "app.yaml: document 1 (List): extra: unknown field in a List",
        "app.yaml: document 1 (List): items: must be a list of objects, got an object",
    ]


def test_duplicate_objects_in_one_text():
    implicit = SERVICE.replace(", namespace: shop", "")
    explicit = SERVICE.replace("namespace: shop", "namespace: default")

    assert error_lines(f"{implicit}---\n{NAMESPACE}---\n{explicit}") == [
        "app.yaml: document 3 (Service default/web): metadata.name: duplicate object: Service "
        "default/web is also defined in app.yaml document 1"
    ]


def test_same_name_in_other_kind_or_namespace_is_no_duplicate():
    other_namespace = SERVICE.replace("namespace: shop", "namespace: billing")
    account = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop}\n"

    manifests = parse_documents(f"{SERVICE}---\n{other_namespace}---\n{account}", "app.yaml")

    assert len(manifests) == 3


def test_json_source_is_parsed_as_json():
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}

    (manifest,) = parse_documents(json.dumps(obj), "ns.json")

    assert manifest.key == ("Namespace", "", "shop")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"apiVersion": "v1",\n "kind": }', "invalid JSON at line 2, column 10: Expecting value"),
        ('{"kind": "a", "kind": "b"}', "invalid JSON: duplicate key 'kind'"),
    ],
)
def test_json_syntax_errors(text, message):
    assert error_lines(text, "ns.json") == [f"ns.json: document 1: {message}"]


# ---- load_paths -----------------------------------------------------------------------------


def write(directory, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


def test_load_paths_reads_manifest_files_of_a_directory_sorted(tmp_path):
    write(tmp_path, "b.yml", SERVICE)
    write(tmp_path, "a.yaml", NAMESPACE)
    billing = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "billing"}}
    write(tmp_path, "c.json", json.dumps(billing))
    write(tmp_path, "README.md", "not: a manifest")
    (tmp_path / "nested").mkdir()
    write(tmp_path / "nested", "d.yaml", "not even: [valid")

    manifests = load_paths([str(tmp_path)])

    assert [(m.source.rsplit("/", 1)[-1], m.name) for m in manifests] == [
        ("a.yaml", "shop"),
        ("b.yml", "web"),
        ("c.json", "billing"),
    ]


def test_load_paths_reports_every_error_of_every_file(tmp_path):
    first = write(tmp_path, "a.yaml", BAD_SERVICE)
    second = write(tmp_path, "b.yaml", f"{NAMESPACE}---\n{SERVICE}")  # duplicates a.yaml's Service
    third = write(tmp_path, "c.yaml", "kind: [")
    missing = str(tmp_path / "missing.yaml")

    with pytest.raises(ManifestErrors) as caught:
        load_paths([str(tmp_path), missing])

    assert str(caught.value).splitlines() == [
        f"{first}: document 1 (Service shop/web): spec.ports[0].port: {PORT_ERROR}",
        f"{third}: document 1: invalid YAML at line 1, column 8: expected the node content, but "
        "found '<stream end>' (while parsing a flow node at line 1)",
        f"{missing}: no such file or directory",
    ]
    assert second  # valid: a.yaml's Service never validated, so there is nothing to duplicate


def test_load_paths_finds_duplicates_across_files(tmp_path):
    first = write(tmp_path, "a.yaml", SERVICE)
    second = write(tmp_path, "b.yaml", f"{NAMESPACE}---\n{SERVICE}")

    with pytest.raises(ManifestErrors) as caught:
        load_paths([first, second])

    (error,) = caught.value.errors
    assert (error.source, error.index, error.field) == (second, 2, "metadata.name")
    assert (
        error.message == f"duplicate object: Service shop/web is also defined in {first} document 1"
    )


def test_load_paths_reads_a_path_given_twice_once(tmp_path):
    path = write(tmp_path, "a.yaml", SERVICE)

    assert len(load_paths([path, str(tmp_path), path])) == 1


def test_load_paths_reads_stdin_for_dash():
    (manifest,) = load_paths(["-"], stdin=io.StringIO(SERVICE))

    assert manifest.source == "<stdin>"


def test_load_paths_stdin_errors_name_stdin():
    with pytest.raises(ManifestErrors) as caught:
        load_paths(["-"], stdin=io.StringIO(BAD_SERVICE))

    assert str(caught.value) == (
        f"<stdin>: document 1 (Service shop/web): spec.ports[0].port: {PORT_ERROR}"
    )


def test_load_paths_file_level_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    binary = tmp_path / "blob.yaml"
    binary.write_bytes(b"kind: \xff\xfe\n")

    with pytest.raises(ManifestErrors) as caught:
        load_paths([str(empty), str(binary)])

    assert str(caught.value).splitlines() == [
        f"{empty}: directory has no .yaml, .yml, .json files",
        f"{binary}: is not UTF-8 text (byte 0xff at offset 6)",
    ]


def test_load_paths_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SERVICE.encode())

    assert load_paths([str(path)])[0].name == "web"
