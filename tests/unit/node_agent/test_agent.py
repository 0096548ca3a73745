"""The node agent's own decisions that need no sockets: when certificates renew."""

from __future__ import annotations

from controller.ca import CertificateAuthority
from node_agent.agent import renewal_due
from nodemesh import controlplane
from nodemesh.identity import SpiffeId

TD = "cluster.local"


def test_renewal_is_due_at_half_of_the_certificates_own_lifetime(tmp_path):
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    key = controlplane.new_key()
    issued = ca.sign_csr(controlplane.csr_pem(key).encode(), SpiffeId(TD, "shop", "web"))
    kc = controlplane.KeyAndCert(
        controlplane.key_pem(key),
        issued.chain_pem,
        ca.trust_bundle_pem(),
        int(issued.not_after.timestamp()),
    )
    start, end = issued.not_before.timestamp(), issued.not_after.timestamp()
    assert not renewal_due(kc, start + (end - start) * 0.49)
    assert renewal_due(kc, start + (end - start) * 0.51)
