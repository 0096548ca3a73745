"""The waypoint: nodemesh's L7 proxy (HTTP/1.1, HTTP/2, gRPC) in front of a namespace's Services."""
