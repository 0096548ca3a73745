"""A gRPC server for the waypoint tests: /demo.Echo/Say (unary, NOT_FOUND for "missing") and
/demo.Echo/Count (server streaming: n messages). Bytes in, bytes out: no generated code."""

import sys
from concurrent import futures

import grpc


def say(request: bytes, context) -> bytes:
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: missing")
    return b"hello " + request


def count(request: bytes, context):
    for i in range(int(request)):
        yield str(i).encode()


handlers = {
    "Say": grpc.unary_unary_rpc_method_handler(say),
    "Count": grpc.unary_stream_rpc_method_handler(count),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Echo", handlers),))
server.add_insecure_port(f"0.0.0.0:{sys.argv[1]}")
server.start()
server.wait_for_termination()
