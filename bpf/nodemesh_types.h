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

#define NODEMESH_LAYOUT_VERSION 2

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

/* The original destination of a captured connection as sock_ops hands it to the agent, with the
 * client socket's cookie: the key of that connection's capture event (struct nodemesh_event_v2),
 * which the agent cannot read from its own side of the connection. */
struct nodemesh_orig_dst_v2 {
    __u32 ip4;
    __u16 port;
    __u16 pad;
    __u64 socket_cookie;
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

/* What a hook decided (struct nodemesh_event_v2.reason, and the index of nodemesh_reasons_v1).
 * NODEMESH_REASON_REDIRECTED is the one capture; every other reason leaves the connection alone.
 * Mirrored by bpf_types.Reason. */
#define NODEMESH_REASON_REDIRECTED 1    /* captured: sent to the agent's listener */
#define NODEMESH_REASON_LOOPBACK 2      /* outbound to 127/8: counted, no event (too common) */
#define NODEMESH_REASON_AGENT_MARK 3    /* outbound socket marked NODEMESH_MARK */
#define NODEMESH_REASON_EXCLUDED 4      /* in nodemesh_exclusions_v1 */
#define NODEMESH_REASON_NO_RECORD 5     /* outbound: nodemesh_pending_v1 refused the record */
#define NODEMESH_REASON_FROM_POD 6      /* inbound from the pod itself: the agent delivering;
                                         * counted, no event (one per delivered connection) */
#define NODEMESH_REASON_PROBE_SOURCE 7  /* inbound from the kubelet's probe address */
#define NODEMESH_REASON_HBONE_PORT 8    /* inbound to NODEMESH_HBONE_PORT: the agent's own */
#define NODEMESH_REASON_NO_LISTENER 9   /* inbound: the agent registered no listener (yet) */
#define NODEMESH_REASON_ASSIGN_FAILED 10 /* inbound: bpf_sk_assign refused the listener */
#define NODEMESH_REASONS 11             /* size of nodemesh_reasons_v1 */

/* Which hook wrote an event (struct nodemesh_event_v2.hook). */
#define NODEMESH_HOOK_CONNECT4 1
#define NODEMESH_HOOK_CONNECT6 2
#define NODEMESH_HOOK_SK_LOOKUP 3

/* One capture decision, sent through the ring buffer nodemesh_events_v2: every captured
 * connection, and every one deliberately passed (except the two reasons marked "no event").
 * Written where the decision is made, so an outbound event comes from connect4/6, before the
 * kernel has chosen the source port: src is only known there when the app bound it first.
 * socket_cookie is the client socket's (bpf_get_socket_cookie), which sock_ops copies into
 * nodemesh_orig_dst_v2 so the agent can join the event with the connection it accepts. */
struct nodemesh_event_v2 {
    __u64 time_ns;       /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME */
    __u64 netns_cookie;  /* the pod */
    __u64 socket_cookie; /* outbound: the client's socket; inbound: 0 (sk_lookup has none) */
    __u32 src_ip4;       /* inbound: the client; outbound: the bound address, or 0 */
    __u32 dst_ip4;       /* the original destination */
    __u32 listener_ip4;  /* captured: where the connection now goes; passed: 0 */
    __u16 src_port;      /* inbound: the client's; outbound: the bound port, or 0 */
    __u16 dst_port;
    __u16 listener_port;
    __u8 direction; /* NODEMESH_DIR_* */
    __u8 reason;    /* NODEMESH_REASON_* */
    __u8 hook;      /* NODEMESH_HOOK_* */
    __u8 pad[3];
};

#endif
