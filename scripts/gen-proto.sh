#!/usr/bin/env bash
# Regenerate the Python modules of every .proto under nodemesh/proto (checked in, so nobody needs
# protoc to run nodemesh). Run from anywhere; idempotent: an unchanged .proto gives unchanged files.
#
# Protos are compiled from the repository root, so a file's import path is its repository path
# (import "nodemesh/proto/x.proto") and Python imports read `from nodemesh.proto import x_pb2`.
# grpc_tools' bundled google/protobuf/*.proto (Struct, ...) are on the include path. gRPC stubs
# (*_pb2_grpc.py) are made only for files that define a service.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

shopt -s nullglob
protos=(nodemesh/proto/*.proto)
if [ ${#protos[@]} -eq 0 ]; then
    echo "gen-proto: no .proto files under nodemesh/proto" >&2
    exit 1
fi

for proto in "${protos[@]}"; do
    args=(-I . --python_out=. --pyi_out=.)
    if grep -qE '^[[:space:]]*service[[:space:]]' "$proto"; then
        args+=(--grpc_python_out=.)
    fi
    "$PYTHON" -m grpc_tools.protoc "${args[@]}" "$proto"
    echo "gen-proto: $proto"
done
