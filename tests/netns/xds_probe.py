"""A config subscriber for namespaced tests, run inside a node's netns through the launcher.

It is what the node agent's control-plane half will be (bootstrap with the node's token, one
delta stream, per-resource accept/refuse), minus the datapath. It prints one JSON line per event
on stdout: {"ev": "up"|"del", "type": T, "name": N} and {"ev": "synced"} after each response.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from controller import scope
from controller.resources import ResourceError, from_resource
from nodemesh import controlplane
from nodemesh.xds.stream import ConfigStream


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--controller", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--state", required=True, type=Path)
    p.add_argument("--refuse", default="")
    args = p.parse_args()

    def handle(type_url, upserts, removals):
        rejected = {}
        for res in upserts:
            if res.name == args.refuse:
                rejected[res.name] = "refused by the test"
                continue
            try:
                from_resource(type_url, res.payload, res.name)
            except ResourceError as exc:
                rejected[res.name] = str(exc)
                continue
            emit(ev="up", type=type_url.rsplit(".", 1)[-1], name=res.name)
        for name in removals:
            emit(ev="del", type=type_url.rsplit(".", 1)[-1], name=name)
        emit(ev="synced")
        return rejected

    async def run():
        token = (args.state / "nodes" / args.node / "token").read_text()
        bundle = (args.state / "ca" / "trust-bundle.pem").read_bytes()
        stream = ConfigStream(f"probe~{args.node}", scope.TYPE_URLS, handle)
        boot = f"{args.controller}:15011"
        mtls = f"{args.controller}:15012"
        while True:
            try:
                ident = await controlplane.bootstrap(boot, bundle, args.node, token)
                break
            except Exception as exc:  # the controller may be restarting: try again
                emit(ev="bootstrap-retry", error=str(exc)[:200])
                await asyncio.sleep(0.3)
        await stream.run(lambda: controlplane.mtls_channel(mtls, ident))

    asyncio.run(run())


if __name__ == "__main__":
    main()
