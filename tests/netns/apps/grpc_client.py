"""Calls the gRPC server through the mesh; prints one JSON line with what each call returned."""

import json
import sys

import grpc

target = sys.argv[1]
channel = grpc.insecure_channel(target, options=(("grpc.enable_http_proxy", 0),))
say = channel.unary_unary("/demo.Echo/Say")
count = channel.unary_stream("/demo.Echo/Count")
result = {"say": say(b"mesh", timeout=10).decode()}
try:
    say(b"missing", timeout=10)
    result["missing"] = "OK"
except grpc.RpcError as error:
    result["missing"] = error.code().name
    result["missing_detail"] = error.details()
result["count"] = [m.decode() for m in count(b"5", timeout=10)]
print(json.dumps(result))
