"""Message schemas both ends of a nodemesh wire speak, generated from the .proto files beside this.

- `ca.proto`: certificate signing (node bootstrap, workload certificates).
- `mesh.proto`: the configuration resources the controller pushes to agents and waypoints over
  delta xDS (Workload, PeerWorkload, Service, AuthorizationPolicy, PeerAuthentication, HttpRoute);
  `controller.resources` converts them to and from the controller's model.

The `*_pb2.py` (+ `.pyi`, `*_pb2_grpc.py`) modules are generated and checked in: edit the .proto and
run `scripts/gen-proto.sh`, never edit them by hand.
"""
