"""The CONNECT baggage that tells a waypoint which workload a client is."""

from hypothesis import given
from hypothesis import strategies as st

from nodemesh.hbone import baggage
from nodemesh.telemetry import canonical_revision, canonical_service, workload_name


def test_a_deployment_pod_is_described_by_its_deployment_app_and_version():
    value = baggage.encode("shop", "web-5d9f-abcde", "Deployment/web", "web", "v2")
    assert value == (
        "k8s.namespace.name=shop,k8s.deployment.name=web,service.name=web,service.version=v2"
    )
    source = baggage.decode(value, "shop")
    assert (workload_name(source), canonical_service(source), canonical_revision(source)) == (
        "web",
        "web",
        "v2",
    )


def test_a_bare_pod_is_named_by_itself_and_odd_characters_survive():
    source = baggage.decode(baggage.encode("shop", "tool", "", "my app,=x", ""), "shop")
    assert source.name == "tool" and dict(source.labels) == {"app": "my app,=x"}


def test_a_namespace_the_certificate_does_not_prove_is_ignored():
    value = baggage.encode("shop", "web-1", "Deployment/web", "web", "v1")
    assert baggage.decode(value, "bank") is None
    assert baggage.decode(value, None) is None  # plaintext: no identity to check against


def test_malformed_or_oversized_baggage_is_ignored():
    assert baggage.decode("garbage", "shop") is None
    assert baggage.decode("k8s.namespace.name=shop", "shop") is None  # no workload named
    assert baggage.decode("k8s.namespace.name=shop,k8s.pod.name=" + "x" * 2000, "shop") is None


@given(st.text(max_size=300))
def test_any_text_decodes_to_a_workload_or_none(text):
    result = baggage.decode(text, "shop")
    assert result is None or result.namespace == "shop"


POD = "k8s.namespace.name=shop,k8s.deployment.name=web,service.name=web,service.version=v2"


def test_the_dialled_service_travels_with_the_pod_and_reads_back():
    value = baggage.with_service(POD, "db.shop.svc.cluster.local")
    assert value == POD + ",nodemesh.destination.service=db.shop.svc.cluster.local"
    assert baggage.claimed_service(value) == "db.shop.svc.cluster.local"
    # The waypoint's reading of the same header is unchanged by the extra member.
    assert baggage.decode(value, "shop") == baggage.decode(POD, "shop")


def test_no_service_dialled_adds_nothing():
    assert baggage.with_service(POD, None) == POD
    assert baggage.with_service(POD, "") == POD
    assert baggage.claimed_service(POD) is None
    assert baggage.with_service("", "db.shop.svc.cluster.local") == (
        "nodemesh.destination.service=db.shop.svc.cluster.local"
    )


def test_a_malformed_or_absent_header_claims_nothing():
    assert baggage.claimed_service(None) is None
    assert baggage.claimed_service("garbage") is None
    assert baggage.claimed_service("nodemesh.destination.service=") is None
    oversized = "nodemesh.destination.service=" + "x" * 2000
    assert baggage.claimed_service(oversized) is None


@given(st.text(max_size=50))  # quoted, 12 bytes a character at most: under MAX_BAGGAGE
def test_any_hostname_survives_the_round_trip(hostname):
    value = baggage.with_service(POD, hostname)
    assert baggage.claimed_service(value) == (hostname or None)
