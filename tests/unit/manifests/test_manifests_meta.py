"""metadata of every kind, Namespace and ServiceAccount, and the name syntax rules."""

from __future__ import annotations

import pytest

from nodemesh.manifests import names

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
ACCOUNT = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "frontend"}}
LABEL_KEY_RULE = (
    "key must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending "
    "with a letter or digit, after an optional 'prefix/', got "
)


def test_namespace_is_cluster_scoped(normalized):
    assert normalized(NAMESPACE)["metadata"] == {"name": "shop", "labels": {}}


def test_empty_namespace_means_default(normalized):
    obj = normalized({**ACCOUNT, "metadata": {"name": "frontend", "namespace": ""}})

    assert obj["metadata"]["namespace"] == "default"


@pytest.mark.parametrize(
    ("base", "path", "value"),
    [
        (ACCOUNT, "metadata.namespace", "shop"),
        (ACCOUNT, "metadata.name", "frontend.v2"),  # most names are DNS subdomains
        (ACCOUNT, "metadata.labels", {"app.kubernetes.io/name": "web", "tier": "", "v": "1.0_a"}),
        (ACCOUNT, "metadata.annotations", {"example.com/config": '{"any": "text at all"}'}),
        (ACCOUNT, "metadata.resourceVersion", "123"),  # from `kubectl get -o yaml`
        (ACCOUNT, "metadata.generateName", "frontend-"),
        (ACCOUNT, "secrets", [{"name": "token"}]),
        (ACCOUNT, "automountServiceAccountToken", False),
        (NAMESPACE, "spec", {"finalizers": ["kubernetes"]}),
        (NAMESPACE, "metadata.namespace", ""),
    ],
)
def test_accepted_metadata(check_case, base, path, value):
    assert check_case(base, path, value) == []


@pytest.mark.parametrize(
    ("base", "path", "value", "field", "message"),
    [
        (
            NAMESPACE,
            "metadata.namespace",
            "default",
            "metadata.namespace",
            "Namespace is cluster-scoped and takes no namespace; remove metadata.namespace",
        ),
        (
            NAMESPACE,
            "metadata.name",
            "shop.eu",
            "metadata.name",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with "
            "a letter or digit), got 'shop.eu'",
        ),
        (
            NAMESPACE,
            "metadata.name",
            "a" * 64,
            "metadata.name",
            "must be at most 63 characters, got 64",
        ),
        (ACCOUNT, "metadata.name", "", "metadata.name", "must not be empty"),
        (
            ACCOUNT,
            "metadata.name",
            "Frontend",
            "metadata.name",
            "must be a DNS-1123 subdomain (lowercase letters, digits and '-', starting and ending "
            "with a letter or digit, and '.'), got 'Frontend'",
        ),
        (
            ACCOUNT,
            "metadata.name",
            7,
            "metadata.name",
            "must be a string, got integer 7 (quote it if you meant the string)",
        ),
        (
            ACCOUNT,
            "metadata.namespace",
            "Shop",
            "metadata.namespace",
            "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with "
            "a letter or digit), got 'Shop'",
        ),
        (
            ACCOUNT,
            "metadata.lables",
            {},
            "metadata.lables",
            "unknown field; did you mean 'labels'?",
        ),
        (ACCOUNT, "metadata.labels", ["app"], "metadata.labels", "must be an object, got a list"),
        (
            ACCOUNT,
            "metadata.labels",
            {"app": "a b"},
            "metadata.labels.app",
            "label value must be empty or at most 63 characters of letters, digits, '-', '_', '.', "
            "starting and ending with a letter or digit, got 'a b'",
        ),
        (
            ACCOUNT,
            "metadata.labels",
            {"app": True},
            "metadata.labels.app",
            "must be a string, got boolean true (quote it if you meant the string)",
        ),
        (
            ACCOUNT,
            "metadata.labels",
            {"app": None},
            "metadata.labels.app",
            "must be a string, got null",
        ),
        (
            ACCOUNT,
            "metadata.labels",
            {"-app": "x"},
            "metadata.labels['-app']",
            f"{LABEL_KEY_RULE}'-app'",
        ),
        (
            ACCOUNT,
            "metadata.labels",
            {"a/b/c": "x"},
            "metadata.labels['a/b/c']",
            "key may contain at most one '/', got 'a/b/c'",
        ),
        (
            ACCOUNT,
            "metadata.labels",
            {"Ex.com/a": "x"},
            "metadata.labels['Ex.com/a']",
            "key prefix must be a DNS-1123 subdomain (like 'example.com/'), got 'Ex.com/a'",
        ),
        (
            ACCOUNT,
            "metadata.labels",
            {1: "x"},
            "metadata.labels[1]",
            "keys must be strings, got integer 1",
        ),
        (
            ACCOUNT,
            "metadata.annotations",
            {"note": 5},
            "metadata.annotations.note",
            "must be a string, got integer 5 (quote it if you meant the string)",
        ),
        (
            ACCOUNT,
            "metadata.annotations",
            {"a": "x" * 300_000},
            "metadata.annotations",
            "must total at most 256 KiB, got 300001 bytes",
        ),
        (ACCOUNT, "secret", [], "secret", "unknown field; did you mean 'secrets'?"),
    ],
)
def test_metadata_errors(check_case, base, path, value, field, message):
    assert check_case(base, path, value) == [(field, message)]


def test_yaml_dates_and_numbers_get_a_quoting_hint(problems_of):
    text = (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {since: 2024-01-01}\n"
    )

    assert problems_of(text) == [
        (
            "metadata.labels.since",
            "must be a string, got timestamp 2024-01-01 (quote it if you meant the string)",
        )
    ]


@pytest.mark.parametrize(
    ("rule", "value", "valid"),
    [
        (names.dns1123_label, "a", True),
        (names.dns1123_label, "a-1", True),
        (names.dns1123_label, "-a", False),
        (names.dns1123_label, "a" * 63, True),
        (names.dns1035_label, "1a", False),
        (names.dns1123_subdomain, "a.b-c.d", True),
        (names.dns1123_subdomain, "a..b", False),
        (names.dns1123_subdomain, "a" * 254, False),
        (names.port_name, "http", True),
        (names.port_name, "h2c-9", True),
        (names.port_name, "8080", False),
        (names.port_name, "a--b", False),
        (names.port_name, "http-", False),
        (names.label_key, "example.com/app", True),
        (names.label_key, "/app", False),
        (names.label_key, "a" * 64, False),
        (names.label_value, "", True),
        (names.label_value, "a" * 64, False),
        (names.env_var_name, "MY_VAR.1", True),
        (names.env_var_name, "é", False),
        (names.http_token, "x-request-id", True),
        (names.http_token, "x:y", False),
        (names.gateway_hostname, "*.example.com", True),
        (names.gateway_hostname, "a.*.com", False),
        (names.ipv4_address, "198.18.0.1", True),
        (names.ipv4_address, "::1", False),
        (names.ip_block, "10.1.2.3/8", True),
        (names.ip_block, "fd00::/129", False),
        (names.port_number_string, "65535", True),
        (names.port_number_string, "65536", False),
        (names.port_number_string, "٣", False),  # a digit, but not an ASCII one
    ],
)
def test_name_rules(rule, value, valid):
    assert (rule(value) is None) is valid
