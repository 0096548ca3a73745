/* sk_lookup: inbound capture, attached to each enrolled pod's network namespace.
 *
 * Runs when the kernel looks for a listener for a new connection to an address local to the pod.
 * A TCP SYN to the pod's IP from outside the pod, on any port but HBONE's and the excluded ones,
 * is given to the agent's inbound listener (port 15006, bound to 127.0.0.1 in the pod netns and
 * registered in nodemesh_inbound_v1, so a pod process binding 15006 itself gets nothing). The
 * packet is not rewritten, so the accepted socket's getsockname() is the original destination.
 * Established connections never reach this hook: the kernel finds their socket first. A SYN that
 * meets a TIME_WAIT socket does (the kernel looks for a listener again), so a client reusing its
 * port stays captured; a TC ingress program cannot get that case right (see README.md).
 *
 * sk_lookup programs cannot call bpf_get_netns_cookie (verified on 6.18), so the pod is found by
 * its IP in nodemesh_pods_v1, which the agent fills.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>

#include "nodemesh_lib.h"

#ifndef NODEMESH_HBONE_PORT
#define NODEMESH_HBONE_PORT 15008
#endif

#ifndef NODEMESH_INBOUND_PORT
#define NODEMESH_INBOUND_PORT 15006 /* the agent's listener, as the events name it */
#endif

#define NM_AF_INET 2

/* The kubelet's probe source (nodemesh.local.addressing.PROBE_SOURCE, 198.18.0.254), in host
 * byte order: a probe must reach the application itself, also under STRICT, or readiness
 * would report the agent instead of the app (Istio ambient exempts its 169.254.7.127 the same
 * way). Only the node holds that address, so nothing else can finish a handshake from it. */
#ifndef NODEMESH_PROBE_SOURCE
#define NODEMESH_PROBE_SOURCE 0xc61200feU
#endif

/* A connection from inside the pod itself: the agent delivering to the app after HBONE (capturing
 * it would loop), or an app reaching its own IP (connect4 saw it already). It has to be told by
 * its source: for local traffic the kernel reports the pod's eth0 as ingress_ifindex, the same as
 * for traffic from outside (verified on 6.18), and sk_lookup sees no mark. */
static __always_inline bool sklookup4_from_pod(struct bpf_sk_lookup *ctx, __u32 pod_ip4)
{
    if (ctx->remote_ip4 == pod_ip4 || (bpf_ntohl(ctx->remote_ip4) >> 24) == 127)
        return true;
    /* The agent delivering from the client's own address (IP_TRANSPARENT): it registered that
     * exact source before connect() (node_agent/pod_routing.py). */
    struct nodemesh_addr_v1 src = {.ip4 = ctx->remote_ip4,
                                   .port = (__u16)bpf_ntohs((__u16)ctx->remote_port)};
    __u32 *pod = nodemesh_deliveries_v1.lookup(&src);
    return pod && *pod == pod_ip4;
}

/* Why a SYN to the pod is to be left alone; 0 to capture it. */
static __always_inline __u32 sklookup4_pass_reason(struct bpf_sk_lookup *ctx, __u32 pod_ip4)
{
    __u16 port = (__u16)ctx->local_port;

    if (sklookup4_from_pod(ctx, pod_ip4))
        return NODEMESH_REASON_FROM_POD;
    if (bpf_ntohl(ctx->remote_ip4) == NODEMESH_PROBE_SOURCE)
        return NODEMESH_REASON_PROBE_SOURCE;
    if (port == NODEMESH_HBONE_PORT)
        return NODEMESH_REASON_HBONE_PORT;
    if (nm_excluded(pod_ip4, port, NODEMESH_DIR_INBOUND))
        return NODEMESH_REASON_EXCLUDED;
    return 0;
}

/* Give the SYN to the agent's listener: REDIRECTED, or why that could not be done. */
static __always_inline __u32 sklookup4_assign(struct bpf_sk_lookup *ctx, __u32 pod_ip4)
{
    /* The lookup takes a reference on the socket; release it whatever happens. */
    struct bpf_sock *listener = (struct bpf_sock *)nodemesh_inbound_v1.lookup(&pod_ip4);
    if (!listener) /* the agent has no listener here (yet, or any more): plain traffic */
        return NODEMESH_REASON_NO_LISTENER;
    long err = bpf_sk_assign(ctx, listener, 0);
    bpf_sk_release(listener);
    return err ? NODEMESH_REASON_ASSIGN_FAILED : NODEMESH_REASON_REDIRECTED;
}

/* One event per decision but the agent's own deliveries (FROM_POD: one per delivered
 * connection, which the agent reports itself). */
static __always_inline void sklookup4_event(struct bpf_sk_lookup *ctx, __u64 netns_cookie,
                                            __u32 pod_ip4, __u32 reason)
{
    if (reason == NODEMESH_REASON_FROM_POD)
        return;
    bool captured = reason == NODEMESH_REASON_REDIRECTED;
    struct nodemesh_event_v2 ev = {
        .netns_cookie = netns_cookie,
        .src_ip4 = ctx->remote_ip4,
        .dst_ip4 = pod_ip4,
        .listener_ip4 = captured ? bpf_htonl(0x7f000001) : 0,
        .src_port = bpf_ntohs((__u16)ctx->remote_port),
        .dst_port = (__u16)ctx->local_port,
        .listener_port = captured ? NODEMESH_INBOUND_PORT : 0,
        .direction = NODEMESH_DIR_INBOUND,
        .reason = (__u8)reason,
        .hook = NODEMESH_HOOK_SK_LOOKUP,
    };
    nm_event(&ev);
}

static __always_inline void sklookup4(struct bpf_sk_lookup *ctx)
{
    __u32 pod_ip4 = ctx->local_ip4;
    struct nodemesh_pod_v1 *pod = nodemesh_pods_v1.lookup(&pod_ip4);
    if (!pod)
        return; /* loopback, or an address of no enrolled pod */
    __u64 netns_cookie = pod->netns_cookie;

    __u32 reason = sklookup4_pass_reason(ctx, pod_ip4);
    if (reason == 0)
        reason = sklookup4_assign(ctx, pod_ip4);
    bool captured = reason == NODEMESH_REASON_REDIRECTED;
    nm_count(netns_cookie, captured ? NM_CAPTURED_INBOUND : NM_PASSED);
    nm_count_reason(reason);
    sklookup4_event(ctx, netns_cookie, pod_ip4, reason);
}

int nodemesh_sk_lookup(struct bpf_sk_lookup *ctx)
{
    if (ctx->family == NM_AF_INET && ctx->protocol == IPPROTO_TCP)
        sklookup4(ctx);
    return SK_PASS; /* never drop: without an assignment the kernel's own lookup proceeds */
}
