/* Structs that cross the kernel/user boundary, and the constants that go with them.
 *
 * Mirrored field by field in node_agent/bpf_types.py: change both together, and bump
 * NODEMESH_LAYOUT_VERSION (and the _v suffix of every map whose key or value changed) whenever a
 * layout changes, so a restarted agent never reads a map written with another layout.
 * The loader compares each map's key and value size with the Python mirror at load time.
 *
 * Byte order: addresses are kept in network order (as the kernel hands them over), ports in host
 * order (as Python's getpeername() returns them).
 */
#ifndef NODEMESH_TYPES_H
#define NODEMESH_TYPES_H

#define NODEMESH_LAYOUT_VERSION 1

/* Capture directions, also the bits of an exclusion's value. */
#define NODEMESH_DIR_OUTBOUND 1
#define NODEMESH_DIR_INBOUND 2

/* An IPv4 endpoint: the original destination of a captured connection, or an exclusion key
 * (ip4 == 0 means any address, port == 0 means any port). */
struct nodemesh_addr_v1 {
    __u32 ip4;
    __u16 port;
    __u16 pad;
};

/* Identifies a redirected connection as the agent sees it on accept(): the client's address as
 * the peer address of the accepted socket, in the pod's network namespace. Every pod's clients
 * connect from 127.0.0.1 and may draw the same ephemeral port, so the netns cookie is part of it. */
struct nodemesh_flow_key_v1 {
    __u64 netns_cookie;
    __u32 ip4;
    __u16 port;
    __u16 pad;
};

/* What the agent knows about an enrolled pod, keyed by the pod's IP: inbound steering (sk_lookup)
 * cannot ask the kernel for its netns cookie, so the agent tells it. */
struct nodemesh_pod_v1 {
    __u64 netns_cookie;
};

/* Per-pod counters, one copy per CPU, keyed by the pod's netns cookie. */
struct nodemesh_counters_v1 {
    __u64 captured_outbound; /* connect() rewritten to the agent's outbound listener */
    __u64 captured_inbound;  /* SYN steered to the agent's inbound listener */
    __u64 passed;            /* TCP looked at and deliberately left alone */
};

/* One capture, sent through the ring buffer for `meshctl trace`. */
struct nodemesh_event_v1 {
    __u64 time_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    __u64 netns_cookie; /* the pod */
    __u32 src_ip4;      /* outbound: the client as the agent will see it (127.0.0.1) */
    __u32 dst_ip4;      /* the original destination */
    __u16 src_port;
    __u16 dst_port;
    __u8 direction; /* NODEMESH_DIR_* */
    __u8 pad[7];
};

#endif
