"""Asks the controller to sign a CSR that is not one, with the pod's own valid token.

argv: trust bundle path, controller bootstrap address (host:15011), and the token file (else
$NODEMESH_TOKEN_FILE, which the runtime sets for containers but not for `meshctl exec`). The
controller must refuse (reason `bad_csr`, counted in nodemesh_controller_csr_refused_total);
prints one JSON line with the gRPC status it answered, or {"signed": true} if it wrongly signed.
"""

import asyncio
import json
import os
import sys
from pathlib import Path

import grpc

from nodemesh import controlplane
from nodemesh.proto import ca_pb2, ca_pb2_grpc


async def main() -> dict:
    bundle, address = Path(sys.argv[1]).read_bytes(), sys.argv[2]
    path = sys.argv[3] if len(sys.argv) > 3 else os.environ.get(controlplane.TOKEN_FILE_ENV)
    token = controlplane.read_token(path)
    async with controlplane.bootstrap_channel(address, bundle) as channel:
        stub = ca_pb2_grpc.WorkloadBootstrapStub(channel)
        try:
            await stub.Bootstrap(
                ca_pb2.WorkloadBootstrapRequest(csr="not a certificate request"),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=10,
            )
        except grpc.aio.AioRpcError as exc:
            return {"refused": exc.code().name, "why": exc.details()}
    return {"signed": True}


print(json.dumps(asyncio.run(main())), flush=True)
