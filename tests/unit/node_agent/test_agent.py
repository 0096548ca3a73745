"""The node agent's own decisions that need no sockets: when certificates renew, with what."""

from __future__ import annotations

import asyncio

from controller.ca import CertificateAuthority
from node_agent.agent import AgentSettings, NodeAgent, renewal_due
from nodemesh import controlplane
from nodemesh.identity import SpiffeId

TD = "cluster.local"


def issue(tmp_path):
    """shop/web's key and certificate from a new CA, as bootstrap returns them, and the issued
    certificate itself (its validity period)."""
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    key = controlplane.new_key()
    issued = ca.sign_csr(controlplane.csr_pem(key).encode(), SpiffeId(TD, "shop", "web"))
    kc = controlplane.KeyAndCert(
        controlplane.key_pem(key),
        issued.chain_pem,
        ca.trust_bundle_pem(),
        int(issued.not_after.timestamp()),
    )
    return kc, issued


def test_renewal_is_due_at_half_of_the_certificates_own_lifetime(tmp_path):
    kc, issued = issue(tmp_path)
    start, end = issued.not_before.timestamp(), issued.not_after.timestamp()
    assert not renewal_due(kc, start + (end - start) * 0.49)
    assert renewal_due(kc, start + (end - start) * 0.51)


def test_a_node_certificate_renewal_reads_the_rotated_token_again(tmp_path, monkeypatch):
    """Kubernetes rotates the projected token in place; a renewal must not send the first one."""
    kc, issued = issue(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    sent: list[str] = []

    async def bootstrap(address, bundle, node, token):
        sent.append(token)
        return kc

    class Channel:
        async def close(self, grace=None):
            pass

    monkeypatch.setattr(controlplane, "bootstrap", bootstrap)
    monkeypatch.setattr(controlplane, "mtls_channel", lambda *a, **k: Channel())

    async def renew_after_rotation():
        settings = AgentSettings(
            "node1", "controller", "first", b"", token_file=str(token_file), metrics_port=-1
        )
        agent = NodeAgent(settings)
        agent.node_identity, agent._channel = kc, Channel()
        token_file.write_text("rotated\n")
        await agent.renew_due(issued.not_after.timestamp() - 1)

    asyncio.run(renew_after_rotation())
    assert sent == ["rotated"]
