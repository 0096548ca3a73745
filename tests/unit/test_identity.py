"""SPIFFE identities: one spelling per identity in, typed identities or IdentityError out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from nodemesh.identity import (
    IdentityError,
    NodeId,
    SpiffeId,
    check_trust_domain,
    identity_of_certificate,
    parse_any,
)

# --- parse and format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "identity"),
    [
        ("spiffe://cluster.local/ns/default/sa/web", SpiffeId("cluster.local", "default", "web")),
        ("spiffe://td/ns/kube-system/sa/coredns", SpiffeId("td", "kube-system", "coredns")),
        ("spiffe://a_b-c.9/ns/N.s_1/sa/S-A", SpiffeId("a_b-c.9", "N.s_1", "S-A")),
        ("spiffe://cluster.local/nodemesh/node/node1", NodeId("cluster.local", "node1")),
        (
            "spiffe://td/nodemesh/node/ip-10-0-0-1.ec2.internal",
            NodeId("td", "ip-10-0-0-1.ec2.internal"),
        ),
    ],
)
def test_parse_and_format_round_trip(uri, identity):
    assert parse_any(uri) == identity
    assert str(identity) == uri
    assert type(identity).parse(uri) == identity


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "must start with spiffe://"),
        ("https://cluster.local/ns/a/sa/b", "must start with spiffe://"),
        ("spiffe:/cluster.local/ns/a/sa/b", "must start with spiffe://"),
        ("SPIFFE://cluster.local/ns/a/sa/b", "lowercase"),
        ("spiffe:///ns/a/sa/b", "trust domain is empty"),
        ("spiffe://", "trust domain is empty"),
        ("spiffe://Cluster.local/ns/a/sa/b", "lowercase letters"),
        ("spiffe://clüster/ns/a/sa/b", "lowercase letters"),
        ("spiffe://cluster local/ns/a/sa/b", "lowercase letters"),
        ("spiffe://cluster.local:443/ns/a/sa/b", "port"),
        ("spiffe://user@cluster.local/ns/a/sa/b", "userinfo"),
        ("spiffe://user:pw@cluster.local/ns/a/sa/b", "userinfo"),
        ("spiffe://cluster.local/ns/a/sa/b?x=1", "query"),
        ("spiffe://cluster.local/ns/a/sa/b#frag", "fragment"),
        ("spiffe://cluster.local/ns/a/sa/%62", "percent-encoding"),
        ("spiffe://cluster%2elocal/ns/a/sa/b", "percent-encoding"),
        ("spiffe://cluster.local/ns/./sa/b", "dot segments"),
        ("spiffe://cluster.local/ns/a/sa/..", "dot segments"),
        ("spiffe://cluster.local/ns/a/../ns/a/sa/b", "dot segments"),
        ("spiffe://cluster.local/ns/a/sa/b/", "empty path segments"),
        ("spiffe://cluster.local//ns/a/sa/b", "empty path segments"),
        ("spiffe://cluster.local/ns//sa/b", "empty path segments"),
        ("spiffe://cluster.local", "the path must be"),
        ("spiffe://cluster.local/", "empty path segments"),
        ("spiffe://cluster.local/ns/a", "the path must be"),
        ("spiffe://cluster.local/ns/a/sa/b/extra", "the path must be"),
        ("spiffe://cluster.local/sa/b/ns/a", "the path must be"),
        ("spiffe://cluster.local/NS/a/SA/b", "the path must be"),
        ("spiffe://cluster.local/ns/a b/sa/b", "namespace 'a b'"),
        ("spiffe://cluster.local/ns/a/sa/b:c", "service account 'b:c'"),
        ("spiffe://cluster.local/nodemesh/node", "the path must be"),
        ("spiffe://cluster.local/nodemesh/node/a/b", "the path must be"),
        ("spiffe://cluster.local/nodemesh/node/n~1", "node name"),
        ("spiffe://" + "a" * 256 + "/ns/a/sa/b", "longer than 255"),
        ("spiffe://td/ns/" + "a" * 2048 + "/sa/b", "longer than 2048"),
        (" spiffe://cluster.local/ns/a/sa/b", "must start with spiffe://"),
        ("spiffe://cluster.local/ns/a/sa/b\n", "service account"),
    ],
)
def test_parse_rejects_with_a_reason(uri, reason):
    with pytest.raises(IdentityError, match="is not a nodemesh identity") as caught:
        parse_any(uri)
    assert reason in str(caught.value)


def test_parse_rejects_non_strings():
    with pytest.raises(IdentityError, match="expected a string, got bytes"):
        parse_any(b"spiffe://td/ns/a/sa/b")


def test_a_node_identity_is_never_a_workload_identity():
    with pytest.raises(IdentityError, match="node agent identity, not a workload one"):
        SpiffeId.parse("spiffe://td/nodemesh/node/n1")
    with pytest.raises(IdentityError, match="workload identity, not a node agent one"):
        NodeId.parse("spiffe://td/ns/a/sa/b")


@pytest.mark.parametrize(
    "build",
    [
        lambda: SpiffeId("Bad", "ns", "sa"),
        lambda: SpiffeId("td", "", "sa"),
        lambda: SpiffeId("td", "ns", ".."),
        lambda: SpiffeId("td", "a/b", "sa"),
        lambda: NodeId("td", "node/1"),
        lambda: NodeId("", "node1"),
    ],
)
def test_constructors_refuse_what_parse_would_refuse(build):
    with pytest.raises(IdentityError):
        build()


def test_identities_are_hashable_and_workloads_sort():
    ids = [SpiffeId("td", "b", "x"), SpiffeId("td", "a", "y"), SpiffeId("td", "a", "x")]
    assert sorted(ids) == [ids[2], ids[1], ids[0]]
    assert len({*ids, SpiffeId("td", "a", "x"), NodeId("td", "n")}) == 4


def test_check_trust_domain():
    assert check_trust_domain("cluster.local") == "cluster.local"
    with pytest.raises(IdentityError, match="lowercase"):
        check_trust_domain("Cluster.Local")


# --- properties ----------------------------------------------------------------------------------

_TD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
_SEGMENT_CHARS = _TD_CHARS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
trust_domains = st.text(_TD_CHARS, min_size=1, max_size=40)
segments = st.text(_SEGMENT_CHARS, min_size=1, max_size=40).filter(lambda s: s not in (".", ".."))
identities = st.one_of(
    st.builds(SpiffeId, trust_domains, segments, segments),
    st.builds(NodeId, trust_domains, segments),
)
# Text near the grammar reaches deeper branches than arbitrary Unicode would.
uri_like = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["", "spiffe://", "SPIFFE://", "spiffe:/", "spiffe://td/", "spiffe://td/ns/"]),
    st.text(_SEGMENT_CHARS + "/:@%?#~ \x00é", max_size=60),
)


@given(identities)
def test_parse_inverts_str(identity):
    assert parse_any(str(identity)) == identity
    assert type(identity).parse(str(identity)) == identity


@given(st.one_of(st.text(), uri_like))
def test_parse_raises_only_identity_error(text):
    try:
        identity = parse_any(text)
    except IdentityError:
        return
    assert str(identity) == text  # whatever parses has exactly this one spelling


# --- certificates --------------------------------------------------------------------------------


def _cert_with(san: x509.SubjectAlternativeName | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spiffe://td/ns/cn/sa/not-me")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(hours=1))
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def _uris(*uris: str) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris])


def test_identity_of_certificate_reads_the_one_uri_san():
    san = x509.SubjectAlternativeName(
        [x509.DNSName("web.default.svc"), x509.UniformResourceIdentifier("spiffe://td/ns/a/sa/b")]
    )
    assert identity_of_certificate(_cert_with(san)) == SpiffeId("td", "a", "b")
    assert identity_of_certificate(_cert_with(_uris("spiffe://td/nodemesh/node/n1"))) == NodeId(
        "td", "n1"
    )


@pytest.mark.parametrize(
    ("san", "message"),
    [
        (None, "no subjectAltName"),
        (x509.SubjectAlternativeName([x509.DNSName("web")]), "exactly one URI SAN, found 0"),
        (_uris("spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c"), "exactly one URI SAN, found 2"),
        (_uris("spiffe://td"), "the path must be"),
        (_uris("https://td/ns/a/sa/b"), "must start with spiffe://"),
    ],
)
def test_identity_of_certificate_refuses(san, message):
    with pytest.raises(IdentityError, match=message):
        identity_of_certificate(_cert_with(san))
