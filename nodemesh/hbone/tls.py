"""Mutual TLS 1.3 for HBONE: SSL contexts from a workload identity, and the peer's identity.

SPIFFE authenticates by URI SAN, not by host name: both ends verify the peer's chain against
the trust bundle, and then the caller compares the SPIFFE ID in the peer's certificate with the
one it expected (the client) or feeds it to authorization (the server). Host-name checking is
therefore off on purpose, and client certificates are required.

Python's ``ssl`` loads a certificate chain and key only from a path. The key goes through an
anonymous in-memory file (``memfd_create``), which never reaches a disk and is closed at once;
only where memfd is missing does a private 0600 temporary file stand in, deleted right after
loading.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator

from cryptography import x509

from nodemesh.controlplane import KeyAndCert
from nodemesh.identity import IdentityError, SpiffeId, identity_of_certificate

ALPN = "h2"


class PeerIdentityError(Exception):
    """The peer's certificate is valid but does not carry the identity we need."""


def server_context(identity: KeyAndCert) -> ssl.SSLContext:
    """Terminate HBONE: our workload certificate, and a verified client certificate required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(context, identity)
    return context


def client_context(identity: KeyAndCert) -> ssl.SSLContext:
    """Originate HBONE: present our certificate, verify the server's chain (not its name)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # SPIFFE: the caller checks the URI SAN instead
    _configure(context, identity)
    return context


def reload_identity(context: ssl.SSLContext, identity: KeyAndCert) -> None:
    """Rotate a live context: new handshakes present the new certificate (and trust any new
    root); established connections keep their sessions, so nothing in flight is dropped."""
    context.load_verify_locations(cadata=identity.bundle_pem.decode("ascii"))
    with _in_memory_file(identity.key_pem + b"\n" + identity.chain_pem) as path:
        context.load_cert_chain(path)


def _configure(context: ssl.SSLContext, identity: KeyAndCert) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=identity.bundle_pem.decode("ascii"))
    context.set_alpn_protocols([ALPN])
    with _in_memory_file(identity.key_pem + b"\n" + identity.chain_pem) as path:
        context.load_cert_chain(path)  # the leaf first, then intermediates; the key alongside


@contextlib.contextmanager
def _in_memory_file(content: bytes) -> Iterator[str]:
    """A path to ``content`` for OpenSSL that lives no longer than the ``with`` block."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("nodemesh-hbone-identity", os.MFD_CLOEXEC)
        try:
            os.write(fd, content)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="nodemesh-hbone-")  # mkstemp creates it 0600
    try:
        os.write(fd, content)
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


def check_alpn(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> None:
    """OpenSSL lets a handshake finish without ALPN agreement; HBONE requires h2."""
    chosen = ssl_object.selected_alpn_protocol()
    if chosen != ALPN:
        raise PeerIdentityError(
            f"peer did not negotiate ALPN {ALPN!r} (got {chosen!r}); it does not speak HBONE"
        )


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> SpiffeId:
    """The workload identity in the verified peer certificate's one URI SAN."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerIdentityError("peer presented no certificate")
    try:
        identity = identity_of_certificate(x509.load_der_x509_certificate(der))
    except (IdentityError, ValueError) as error:
        raise PeerIdentityError(f"peer certificate carries no workload identity: {error}") from None
    if not isinstance(identity, SpiffeId):
        raise PeerIdentityError(
            f"peer presented {identity}, a node agent identity; HBONE needs a workload one"
        )
    return identity
