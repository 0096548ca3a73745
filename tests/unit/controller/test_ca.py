"""The certificate authority, with real keys and certificates: CSRs in, leaves and errors out.

Chains are checked twice where it matters: by our own verify_leaf (both the cryptography policy
verifier and the manual fallback) and by `openssl verify`, an independent implementation.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller import ca_verify
from controller.ca import (
    CLOCK_SKEW,
    ROOT_CERT,
    ROOT_KEY,
    TRUST_BUNDLE,
    CaError,
    CertificateAuthority,
    verify_leaf,
)
from nodemesh.identity import NodeId, SpiffeId, identity_of_certificate

TD = "cluster.local"
WEB = SpiffeId(TD, "default", "web")
START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """A settable clock for `clock=`: seconds since the epoch, like time.time."""

    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self) -> float:
        return self.when.timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def ca(tmp_path, clock) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca", TD, clock=clock)


@pytest.fixture(params=["policy", "manual"])
def verifier(request, monkeypatch):
    """Run verification tests through both the policy verifier and the fallback for old releases."""
    chosen = {"policy": ca_verify.verify_with_policy, "manual": ca_verify.verify_manually}
    monkeypatch.setattr(ca_verify, "verify_chain", chosen[request.param])
    return request.param


# --- helpers -------------------------------------------------------------------------------------


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def csr_pem(
    key=None, *, cn: str | None = None, sans: list[x509.GeneralName] | None = None
) -> bytes:
    key = key or p256()
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def make_ca_cert(
    key,
    name: str,
    *,
    issuer: tuple[x509.Certificate, object] | None = None,
    ca: bool = True,
    key_cert_sign: bool = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    uri: str | None = None,
) -> x509.Certificate:
    """A CA certificate as an operator might bring one; self-signed unless `issuer` is given."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    now = datetime.now(UTC)
    usage = x509.KeyUsage(
        True, False, False, False, False, key_cert_sign, key_cert_sign, False, False
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key())
        builder = builder.add_extension(aki, critical=False)
    if uri:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def write_ca(directory: Path, stem: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(pem(cert))
    key_path.write_bytes(key_pem(key))
    return cert_path, key_path


def openssl_verify(
    tmp_path: Path, roots_pem: bytes, leaf_pem: bytes, untrusted_pem: bytes = b""
) -> subprocess.CompletedProcess:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    files = {"roots.pem": roots_pem, "leaf.pem": leaf_pem, "untrusted.pem": untrusted_pem}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    command = ["openssl", "verify", "-CAfile", str(tmp_path / "roots.pem")]
    if untrusted_pem:
        command += ["-untrusted", str(tmp_path / "untrusted.pem")]
    command.append(str(tmp_path / "leaf.pem"))
    return subprocess.run(command, capture_output=True, text=True, check=False)


def assert_openssl_accepts(tmp_path, roots_pem, leaf_pem, untrusted_pem=b"") -> None:
    result = openssl_verify(tmp_path, roots_pem, leaf_pem, untrusted_pem)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


def leaf_of(issued) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.cert_pem)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the self-managed root -----------------------------------------------------------------------


def test_create_persists_root_key_and_bundle_privately(tmp_path, ca):
    directory = tmp_path / "ca"
    assert mode(directory) == 0o700
    assert mode(directory / ROOT_KEY) == 0o600
    assert mode(directory / ROOT_CERT) == 0o644
    assert (directory / TRUST_BUNDLE).read_bytes() == (directory / ROOT_CERT).read_bytes()
    assert ca.trust_bundle_pem() == (directory / ROOT_CERT).read_bytes()
    assert sorted(p.name for p in directory.iterdir()) == [ROOT_CERT, ROOT_KEY, TRUST_BUNDLE]


def test_key_is_private_even_with_an_open_umask(tmp_path):
    old = os.umask(0)
    try:
        CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    finally:
        os.umask(old)
    assert mode(tmp_path / "ca") == 0o700
    assert mode(tmp_path / "ca" / ROOT_KEY) == 0o600


def test_existing_directory_is_tightened(tmp_path):
    directory = tmp_path / "ca"
    directory.mkdir(mode=0o755)
    CertificateAuthority.load_or_create(directory, TD)
    assert mode(directory) == 0o700


def test_created_root_is_a_spiffe_ca(ca, clock):
    root = x509.load_pem_x509_certificate(ca.trust_bundle_pem())
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    san = root.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert constraints.critical and constraints.value.ca
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://{TD}"]
    assert root.subject.rfc4514_string() == f"CN=nodemesh root CA {TD},O=nodemesh"
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert root.not_valid_after_utc - START >= timedelta(days=3650)
    assert ca.root_not_after == root.not_valid_after_utc
    assert ca.trust_domain == TD


def test_reload_keeps_the_same_root(tmp_path, ca, clock):
    again = CertificateAuthority.load_or_create(tmp_path / "ca", TD, clock=clock)
    assert again.trust_bundle_pem() == ca.trust_bundle_pem()
    issued = again.sign_csr(csr_pem(), WEB)
    assert verify_leaf(issued.chain_pem, ca.trust_bundle_pem(), at=START) == WEB


@pytest.mark.parametrize("missing", [ROOT_CERT, ROOT_KEY])
def test_half_a_root_is_refused_not_replaced(tmp_path, ca, missing):
    (tmp_path / "ca" / missing).unlink()
    with pytest.raises(CaError, match=f"{missing} does not; restore"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD)


def test_a_readable_root_key_is_refused(tmp_path, ca):
    key_path = tmp_path / "ca" / ROOT_KEY
    key_path.chmod(0o640)
    with pytest.raises(CaError, match=f"chmod 600 {key_path}"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD)


def test_a_root_of_another_trust_domain_is_refused(tmp_path, ca, clock):
    with pytest.raises(CaError, match=r"not trust domain 'other.local'"):
        CertificateAuthority.load_or_create(tmp_path / "ca", "other.local", clock=clock)


def test_an_invalid_trust_domain_is_refused(tmp_path):
    with pytest.raises(CaError, match="lowercase"):
        CertificateAuthority.load_or_create(tmp_path / "ca", "Cluster.Local")


# --- leaves --------------------------------------------------------------------------------------


def test_leaf_carries_only_the_authorized_identity(ca):
    asked = [
        x509.DNSName("kubernetes.default.svc"),
        x509.UniformResourceIdentifier(f"spiffe://{TD}/ns/kube-system/sa/admin"),
    ]
    issued = ca.sign_csr(csr_pem(cn="admin", sans=asked), WEB)
    leaf = leaf_of(issued)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(str(WEB))]
    assert leaf.subject.rfc4514_string() == "O=nodemesh"
    assert identity_of_certificate(leaf) == WEB == issued.identity


def test_leaf_extensions_make_an_x509_svid(ca):
    key = p256()
    leaf = leaf_of(ca.sign_csr(csr_pem(key), WEB))
    root = x509.load_pem_x509_certificate(ca.trust_bundle_pem())
    ext = leaf.extensions
    constraints = ext.get_extension_for_class(x509.BasicConstraints)
    usage = ext.get_extension_for_class(x509.KeyUsage)
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert constraints.critical and not constraints.value.ca
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert aki.key_identifier == root_ski.digest
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert leaf.public_key() == key.public_key()
    assert leaf.issuer == root.subject
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)


def test_serials_are_random_and_reported(ca):
    first, second = ca.sign_csr(csr_pem(), WEB), ca.sign_csr(csr_pem(), WEB)
    assert first.serial != second.serial
    assert 0 < first.serial < 2**159
    assert leaf_of(first).serial_number == first.serial


def test_node_agents_get_node_identities(ca):
    node = NodeId(TD, "node1")
    issued = ca.sign_csr(csr_pem(), node)
    assert verify_leaf(issued.chain_pem, ca.trust_bundle_pem(), at=START) == node


def test_default_ttl_is_24_hours_with_clock_skew_allowance(ca):
    issued = ca.sign_csr(csr_pem(), WEB)
    assert issued.not_before == START - CLOCK_SKEW
    assert issued.not_after == START + timedelta(hours=24)
    assert issued.chain_pem == issued.cert_pem  # no intermediates under a self-managed root


def test_ttl_is_honoured(ca):
    issued = ca.sign_csr(csr_pem(), WEB, ttl=timedelta(hours=1))
    assert issued.not_after == START + timedelta(hours=1)


def test_ttl_is_capped_by_the_ca_expiry(ca, clock):
    clock.when = ca.root_not_after - timedelta(hours=2)
    issued = ca.sign_csr(csr_pem(), WEB)
    assert issued.not_after == ca.root_not_after


def test_an_expired_ca_issues_nothing(ca, clock):
    clock.when = ca.root_not_after + timedelta(seconds=1)
    with pytest.raises(CaError, match=r"chain expired .* rotate the root"):
        ca.sign_csr(csr_pem(), WEB)


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        (SpiffeId("other.local", "default", "web"), "outside this CA's trust domain"),
        ("spiffe://cluster.local/ns/default/sa/web", "expected a SpiffeId or NodeId"),
    ],
)
def test_identities_the_ca_cannot_sign(ca, identity, message):
    with pytest.raises(CaError, match=message):
        ca.sign_csr(csr_pem(), identity)


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
def test_lifetime_must_be_positive(ca, ttl):
    with pytest.raises(CaError, match="must be positive"):
        ca.sign_csr(csr_pem(), WEB, ttl=ttl)


# --- CSRs refused --------------------------------------------------------------------------------


def tampered(csr: bytes) -> bytes:
    """Flip the last byte of the signature: the structure still parses, the signature fails."""
    der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der))
    return b"-----BEGIN CERTIFICATE REQUEST-----\n" + body + b"-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    ("make_csr", "message"),
    [
        (lambda: tampered(csr_pem()), "signature does not verify"),
        (lambda: csr_pem(rsa.generate_private_key(65537, 2048)), "RSA 2048-bit key.*P-256"),
        (lambda: csr_pem(ec.generate_private_key(ec.SECP384R1())), "secp384r1 key.*P-256"),
        (lambda: b"not a csr", "not a PEM certificate signing request"),
    ],
    ids=["bad-signature", "rsa", "p384", "garbage"],
)
def test_unacceptable_csrs_are_refused(ca, make_csr, message):
    with pytest.raises(CaError, match=message):
        ca.sign_csr(make_csr(), WEB)


# --- verification --------------------------------------------------------------------------------


def test_leaf_verifies_against_its_root(tmp_path, ca, verifier):
    issued = ca.sign_csr(csr_pem(), WEB)
    assert verify_leaf(issued.chain_pem, ca.trust_bundle_pem(), at=START) == WEB


def test_leaf_verifies_with_openssl(tmp_path):
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)  # real time: openssl uses it
    issued = ca.sign_csr(csr_pem(), WEB)
    assert_openssl_accepts(tmp_path, (tmp_path / "ca" / ROOT_CERT).read_bytes(), issued.cert_pem)
    assert verify_leaf(issued.chain_pem, ca.trust_bundle_pem()) == WEB


def test_a_leaf_of_a_foreign_ca_fails(tmp_path, ca, clock, verifier):
    foreign = CertificateAuthority.load_or_create(tmp_path / "foreign", TD, clock=clock)
    issued = foreign.sign_csr(csr_pem(), WEB)
    with pytest.raises(CaError, match="does not verify"):
        verify_leaf(issued.chain_pem, ca.trust_bundle_pem(), at=START)


def test_an_expired_leaf_fails(tmp_path, verifier):
    past = FakeClock(datetime.now(UTC) - timedelta(days=2))
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD, clock=past)
    issued = ca.sign_csr(csr_pem(), WEB)
    assert verify_leaf(issued.chain_pem, ca.trust_bundle_pem(), at=past.when) == WEB
    with pytest.raises(CaError, match="does not verify"):
        verify_leaf(issued.chain_pem, ca.trust_bundle_pem())


def test_an_expired_leaf_fails_openssl_too(tmp_path):
    past = FakeClock(datetime.now(UTC) - timedelta(days=2))
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD, clock=past)
    issued = ca.sign_csr(csr_pem(), WEB)
    result = openssl_verify(tmp_path, ca.trust_bundle_pem(), issued.cert_pem)
    assert result.returncode != 0
    assert "expired" in result.stdout + result.stderr


def test_a_leaf_not_yet_valid_fails(ca, verifier):
    issued = ca.sign_csr(csr_pem(), WEB)
    with pytest.raises(CaError, match="does not verify"):
        verify_leaf(issued.chain_pem, ca.trust_bundle_pem(), at=START - timedelta(hours=1))


def test_verify_leaf_refuses_garbage(ca):
    with pytest.raises(CaError, match="the certificate chain: no PEM certificates"):
        verify_leaf(b"nope", ca.trust_bundle_pem())
    with pytest.raises(CaError, match="the trust bundle: no PEM certificates"):
        verify_leaf(ca.trust_bundle_pem(), b"")


# --- plugged-in CAs ------------------------------------------------------------------------------


def test_plug_in_a_root_ca(tmp_path, verifier):
    key = p256()
    cert_path, key_path = write_ca(tmp_path, "root", make_ca_cert(key, "Corp Root"), key)
    ca = CertificateAuthority.plug_in(cert_path, key_path, TD)
    issued = ca.sign_csr(csr_pem(), WEB)
    assert ca.trust_bundle_pem() == cert_path.read_bytes()
    assert issued.chain_pem == issued.cert_pem
    assert verify_leaf(issued.chain_pem, ca.trust_bundle_pem()) == WEB
    assert_openssl_accepts(tmp_path, cert_path.read_bytes(), issued.cert_pem)


def test_plug_in_an_rsa_root_ca(tmp_path):
    key = rsa.generate_private_key(65537, 2048)
    cert_path, key_path = write_ca(tmp_path, "root", make_ca_cert(key, "Corp RSA Root"), key)
    ca = CertificateAuthority.plug_in(cert_path, key_path, TD)
    issued = ca.sign_csr(csr_pem(), WEB)
    assert verify_leaf(issued.chain_pem, ca.trust_bundle_pem()) == WEB


def test_plug_in_an_intermediate(tmp_path, verifier):
    root_key, inter_key = p256(), p256()
    root = make_ca_cert(root_key, "Corp Root")
    inter = make_ca_cert(inter_key, "Mesh Intermediate", issuer=(root, root_key))
    inter_path, inter_key_path = write_ca(tmp_path, "inter", inter, inter_key)
    (tmp_path / "chain.pem").write_bytes(pem(root))
    ca = CertificateAuthority.plug_in(
        inter_path, inter_key_path, TD, chain_path=tmp_path / "chain.pem"
    )
    issued = ca.sign_csr(csr_pem(), WEB)
    assert issued.chain_pem == issued.cert_pem + pem(inter)
    assert ca.trust_bundle_pem() == pem(root)
    assert ca.root_not_after == root.not_valid_after_utc
    assert issued.not_after <= inter.not_valid_after_utc
    assert verify_leaf(issued.chain_pem, pem(root)) == WEB
    assert_openssl_accepts(tmp_path, pem(root), issued.cert_pem, untrusted_pem=pem(inter))
    with pytest.raises(CaError, match="does not verify"):
        verify_leaf(issued.cert_pem, pem(root))  # without the intermediate there is no path


def test_plug_in_two_intermediates_with_an_explicit_bundle(tmp_path, verifier):
    root_key, upper_key, lower_key = p256(), p256(), p256()
    root = make_ca_cert(root_key, "Corp Root")
    upper = make_ca_cert(upper_key, "Corp Issuing", issuer=(root, root_key))
    lower = make_ca_cert(lower_key, "Mesh Issuing", issuer=(upper, upper_key))
    lower_path, lower_key_path = write_ca(tmp_path, "lower", lower, lower_key)
    (tmp_path / "chain.pem").write_bytes(pem(upper))
    (tmp_path / "bundle.pem").write_bytes(pem(root))
    ca = CertificateAuthority.plug_in(
        lower_path,
        lower_key_path,
        TD,
        chain_path=tmp_path / "chain.pem",
        bundle_path=tmp_path / "bundle.pem",
    )
    issued = ca.sign_csr(csr_pem(), WEB)
    assert issued.chain_pem == issued.cert_pem + pem(lower) + pem(upper)
    assert verify_leaf(issued.chain_pem, pem(root)) == WEB
    assert_openssl_accepts(tmp_path, pem(root), issued.cert_pem, pem(lower) + pem(upper))


def test_plugged_in_leaf_lifetime_is_capped_by_the_intermediate(tmp_path):
    root_key, inter_key = p256(), p256()
    root = make_ca_cert(root_key, "Corp Root")
    soon = datetime.now(UTC) + timedelta(hours=3)
    inter = make_ca_cert(inter_key, "Short", issuer=(root, root_key), not_after=soon)
    inter_path, inter_key_path = write_ca(tmp_path, "inter", inter, inter_key)
    (tmp_path / "chain.pem").write_bytes(pem(root))
    ca = CertificateAuthority.plug_in(
        inter_path, inter_key_path, TD, chain_path=tmp_path / "chain.pem"
    )
    assert ca.sign_csr(csr_pem(), WEB).not_after == inter.not_valid_after_utc


def _plug_in_case(tmp_path: Path, case: str):
    """Write the files for one broken plug-in; return plug_in's arguments and the file to blame."""
    key, other = p256(), p256()
    yesterday = datetime.now(UTC) - timedelta(days=1)
    certs = {
        "key-mismatch": (make_ca_cert(key, "Root"), other),
        "not-a-ca": (make_ca_cert(key, "Leaf", ca=False), key),
        "no-key-cert-sign": (make_ca_cert(key, "Root", key_cert_sign=False), key),
        "expired": (
            make_ca_cert(key, "Old", not_before=yesterday - timedelta(days=9), not_after=yesterday),
            key,
        ),
        "not-yet-valid": (
            make_ca_cert(key, "New", not_before=datetime.now(UTC) + timedelta(days=1)),
            key,
        ),
        "other-trust-domain": (make_ca_cert(key, "Root", uri="spiffe://other.local"), key),
    }
    cert, signing_key = certs[case]
    cert_path, key_path = write_ca(tmp_path, "ca", cert, signing_key)
    blamed = key_path if case == "key-mismatch" else cert_path
    return (cert_path, key_path, TD), {}, blamed


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("key-mismatch", "private key does not belong to the certificate"),
        ("not-a-ca", "is not a CA certificate"),
        ("no-key-cert-sign", "keyCertSign is missing"),
        ("expired", "expired on .*renew"),
        ("not-yet-valid", "not valid before .*clock"),
        ("other-trust-domain", "spiffe://other.local, not trust domain 'cluster.local'"),
    ],
)
def test_plug_in_validation_errors_name_the_file(tmp_path, case, message):
    args, kwargs, blamed = _plug_in_case(tmp_path, case)
    with pytest.raises(CaError, match=message) as caught:
        CertificateAuthority.plug_in(*args, **kwargs)
    assert str(caught.value).startswith(str(blamed))


def test_plug_in_missing_and_unreadable_files(tmp_path):
    key = p256()
    cert_path, key_path = write_ca(tmp_path, "root", make_ca_cert(key, "Root"), key)
    with pytest.raises(CaError, match=r"nope.pem: private key file not found"):
        CertificateAuthority.plug_in(cert_path, tmp_path / "nope.pem", TD)
    key_path.write_bytes(key_pem(key, password=b"secret"))
    with pytest.raises(CaError, match=r"root-key.pem: the private key is encrypted"):
        CertificateAuthority.plug_in(cert_path, key_path, TD)
    cert_path.write_bytes(b"garbage")
    with pytest.raises(CaError, match=r"root.pem: no PEM certificates"):
        CertificateAuthority.plug_in(cert_path, key_path, TD)


def test_plug_in_an_intermediate_without_its_root(tmp_path):
    root_key, inter_key = p256(), p256()
    root = make_ca_cert(root_key, "Corp Root")
    inter = make_ca_cert(inter_key, "Mesh Intermediate", issuer=(root, root_key))
    inter_path, inter_key_path = write_ca(tmp_path, "inter", inter, inter_key)
    with pytest.raises(CaError, match="is an intermediate CA: give its chain up to the root"):
        CertificateAuthority.plug_in(inter_path, inter_key_path, TD)


def test_plug_in_a_chain_that_leads_elsewhere(tmp_path):
    root_key, inter_key, stranger_key = p256(), p256(), p256()
    root = make_ca_cert(root_key, "Corp Root")
    inter = make_ca_cert(inter_key, "Mesh Intermediate", issuer=(root, root_key))
    stranger = make_ca_cert(stranger_key, "Someone Else")
    inter_path, inter_key_path = write_ca(tmp_path, "inter", inter, inter_key)
    (tmp_path / "chain.pem").write_bytes(pem(stranger))
    with pytest.raises(CaError, match="does not lead to any trusted root"):
        CertificateAuthority.plug_in(
            inter_path, inter_key_path, TD, chain_path=tmp_path / "chain.pem"
        )


def test_plug_in_a_chain_out_of_order(tmp_path):
    root_key, upper_key, lower_key = p256(), p256(), p256()
    root = make_ca_cert(root_key, "Corp Root")
    upper = make_ca_cert(upper_key, "Corp Issuing", issuer=(root, root_key))
    middle_key = p256()
    middle = make_ca_cert(middle_key, "Corp Middle", issuer=(upper, upper_key))
    lower = make_ca_cert(lower_key, "Mesh Issuing", issuer=(middle, middle_key))
    lower_path, lower_key_path = write_ca(tmp_path, "lower", lower, lower_key)
    (tmp_path / "chain.pem").write_bytes(pem(upper) + pem(middle) + pem(root))
    with pytest.raises(CaError, match=r"chain of .* is broken"):
        CertificateAuthority.plug_in(
            lower_path, lower_key_path, TD, chain_path=tmp_path / "chain.pem"
        )


def test_a_plugged_in_ca_is_rotated_by_its_operator(tmp_path):
    key = p256()
    cert_path, key_path = write_ca(tmp_path, "root", make_ca_cert(key, "Root"), key)
    ca = CertificateAuthority.plug_in(cert_path, key_path, TD)
    with pytest.raises(CaError, match="plugged-in CA"):
        ca.rotate_root()
    with pytest.raises(CaError, match="plugged-in CA"):
        ca.retire_old_roots()


# --- rotation ------------------------------------------------------------------------------------


def test_rotation_keeps_old_leaves_valid_until_retired(tmp_path, verifier):
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    old_leaf = ca.sign_csr(csr_pem(), WEB)
    old_root = ca.trust_bundle_pem()

    ca.rotate_root()
    new_leaf = ca.sign_csr(csr_pem(), WEB)
    bundle = ca.trust_bundle_pem()
    assert len(x509.load_pem_x509_certificates(bundle)) == 2
    assert bundle.endswith(old_root)  # the current root comes first
    assert leaf_of(new_leaf).issuer == leaf_of(old_leaf).issuer  # same name, different key
    for leaf in (old_leaf, new_leaf):
        assert verify_leaf(leaf.chain_pem, bundle) == WEB
        assert_openssl_accepts(tmp_path, bundle, leaf.cert_pem)
    with pytest.raises(CaError, match="does not verify"):
        verify_leaf(new_leaf.chain_pem, old_root)

    ca.retire_old_roots()
    assert ca.trust_bundle_pem() == bundle[: len(bundle) - len(old_root)]
    assert verify_leaf(new_leaf.chain_pem, ca.trust_bundle_pem()) == WEB
    with pytest.raises(CaError, match="does not verify"):
        verify_leaf(old_leaf.chain_pem, ca.trust_bundle_pem())
    assert openssl_verify(tmp_path, ca.trust_bundle_pem(), old_leaf.cert_pem).returncode != 0


def test_rotation_is_persisted(tmp_path):
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    old_leaf = ca.sign_csr(csr_pem(), WEB)
    ca.rotate_root()
    directory = tmp_path / "ca"
    assert mode(directory / ROOT_KEY) == 0o600

    reloaded = CertificateAuthority.load_or_create(directory, TD)
    assert reloaded.trust_bundle_pem() == ca.trust_bundle_pem()
    assert verify_leaf(old_leaf.chain_pem, reloaded.trust_bundle_pem()) == WEB
    new_leaf = reloaded.sign_csr(csr_pem(), WEB)
    current_root = (directory / ROOT_CERT).read_bytes()
    assert verify_leaf(new_leaf.chain_pem, current_root) == WEB

    reloaded.retire_old_roots()
    again = CertificateAuthority.load_or_create(directory, TD)
    assert again.trust_bundle_pem() == current_root
    assert sorted(p.name for p in directory.iterdir()) == [ROOT_CERT, ROOT_KEY, TRUST_BUNDLE]


def test_a_serving_certificate_adds_dns_names_but_keeps_one_uri(tmp_path):
    """The controller's own certificate: gRPC clients check it by DNS name."""
    from cryptography import x509 as _x509
    from cryptography.hazmat.primitives import hashes as _hashes
    from cryptography.hazmat.primitives import serialization as _ser
    from cryptography.hazmat.primitives.asymmetric import ec as _ec

    ca = CertificateAuthority.load_or_create(tmp_path / "ca", "cluster.local")
    key = _ec.generate_private_key(_ec.SECP256R1())
    csr = (
        _x509.CertificateSigningRequestBuilder()
        .subject_name(_x509.Name([]))
        .sign(key, _hashes.SHA256())
    )
    me = SpiffeId("cluster.local", "nodemesh-system", "nodemesh-controller")
    issued = ca.sign_csr(
        csr.public_bytes(_ser.Encoding.PEM), me, dns_names=("nodemesh-controller.svc",)
    )
    san = (
        _x509.load_pem_x509_certificate(issued.cert_pem)
        .extensions.get_extension_for_class(_x509.SubjectAlternativeName)
        .value
    )
    assert san.get_values_for_type(_x509.UniformResourceIdentifier) == [str(me)]
    assert san.get_values_for_type(_x509.DNSName) == ["nodemesh-controller.svc"]
