"""Checks over objects, for the cases the sample files do not show."""

from __future__ import annotations

import yaml

from nodemesh.cli.waypoint_ops import gateway_manifest
from tests.unit.analyze.helpers import analyze_objects, codes

ENROLLED = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {nodemesh.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, command: [sleep, "1"], ports: [{name: http, containerPort: 80}]}]}
"""
WITH_WAYPOINT = (
    ENROLLED.replace(
        "{nodemesh.io/dataplane-mode: ambient}",
        "{nodemesh.io/dataplane-mode: ambient, nodemesh.io/use-waypoint: waypoint}",
    )
    + "---\n"
    + yaml.safe_dump(
        gateway_manifest("shop", "waypoint").obj
    )  # what `meshctl waypoint apply` writes
)


def policy(spec: str, kind: str = "AuthorizationPolicy", ns: str = "shop") -> str:
    return f"""---
apiVersion: security.nodemesh.io/v1
kind: {kind}
metadata: {{name: p, namespace: {ns}}}
spec: {spec}
"""


def test_a_peer_authentication_selecting_nothing_is_reported():
    text = ENROLLED + policy(
        "{selector: {matchLabels: {app: nope}}, mtls: {mode: STRICT}}", "PeerAuthentication"
    )
    found = analyze_objects(text)
    assert codes(found) == ["NM0101"]
    assert found[0].kind == "PeerAuthentication"


def test_a_root_namespace_policy_selects_across_namespaces():
    text = ENROLLED + policy(
        "{selector: {matchLabels: {app: web}}, rules: [{from: [{source: {namespaces: [shop]}}]}]}",
        ns="nodemesh-system",
    )
    assert analyze_objects(text) == []


def test_a_policy_in_another_namespace_does_not_select_its_pods():
    text = ENROLLED + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n"
    text += policy("{selector: {matchLabels: {app: web}}}", ns="other")
    assert codes(analyze_objects(text)) == ["NM0101"]


def test_an_l7_selector_policy_behind_a_waypoint_says_to_use_target_refs():
    text = WITH_WAYPOINT + policy(
        "{selector: {matchLabels: {app: web}}, rules: [{to: [{operation: {paths: [/a]}}]}]}"
    )
    found = analyze_objects(text)
    assert codes(found) == ["NM0105"]
    assert "spec.targetRefs instead of spec.selector" in found[0].message
    assert "(paths)" in found[0].message


def test_a_namespace_wide_l7_policy_behind_a_waypoint_is_deferred_to_it():
    text = WITH_WAYPOINT + policy("{rules: [{to: [{operation: {paths: [/a]}}]}]}")
    assert analyze_objects(text) == []


def test_a_namespace_wide_l7_deny_without_waypoint_names_the_effect_and_the_condition_key():
    text = ENROLLED + policy(
        "{action: DENY, rules: [{when: [{key: 'request.headers[x-user]', values: [bob]}]}]}"
    )
    found = analyze_objects(text)
    assert codes(found) == ["NM0105"]
    assert "request.headers[x-user]" in found[0].message
    assert "denies every connection its L4 parts match" in found[0].message


def test_an_l4_only_policy_needs_no_waypoint():
    text = ENROLLED + policy("{rules: [{to: [{operation: {ports: ['80']}}]}]}")
    assert analyze_objects(text) == []


def test_a_namespace_wide_policy_in_a_namespace_not_enrolled_is_reported():
    text = ENROLLED.replace("{nodemesh.io/dataplane-mode: ambient}", "{}") + policy("{}")
    assert codes(analyze_objects(text)) == ["NM0102"]


def test_a_namespace_not_in_the_inputs_is_not_guessed_about():
    # only the policy and the pod: the Namespace (and so enrollment) is unknown
    text = ENROLLED.split("---", 1)[1] + policy("{selector: {matchLabels: {app: web}}}")
    assert analyze_objects(text) == []


def test_a_service_label_naming_a_missing_waypoint_is_reported_on_the_service():
    text = (
        ENROLLED
        + """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, labels: {nodemesh.io/use-waypoint: wp}}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
"""
    )
    found = analyze_objects(text)
    assert codes(found) == ["NM0301"]
    assert found[0].object_name == "Service shop/web"
    assert "meshctl waypoint apply -n shop --name wp" in found[0].message


def test_use_waypoint_none_opts_out_without_a_finding():
    text = (
        WITH_WAYPOINT
        + """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, labels: {nodemesh.io/use-waypoint: none}}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
"""
    )
    assert analyze_objects(text) == []


def test_a_redirect_rule_needs_no_backend():
    text = (
        WITH_WAYPOINT
        + """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
    - filters:
        - type: RequestRedirect
          requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}}
"""
    )
    assert analyze_objects(text) == []


def test_a_named_target_port_some_pods_lack_names_them():
    text = (
        ENROLLED
        + """---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, command: [sleep, "1"]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
"""
    )
    found = analyze_objects(text)
    assert codes(found) == ["NM0501"]
    assert "pod/web-2" in found[0].message and "pod/web " not in found[0].message
