/* cgroup/connect4 and cgroup/connect6: outbound capture, attached to each enrolled pod's cgroup.
 *
 * A TCP connect() by a pod process to a non-loopback IPv4 destination is rewritten to the agent's
 * outbound listener, 127.0.0.1:NODEMESH_OUTBOUND_PORT in the pod's own netns. connect6 does the
 * same for IPv4 destinations reached through a dual-stack IPv6 socket (::ffff:a.b.c.d, Java's
 * default), which connect4 never sees; native IPv6 is not captured (the pod network is IPv4). The
 * original
 * destination is recorded by socket cookie; sock_ops.c re-keys it by the client's address once
 * the kernel has picked a source port, which is what the agent sees on accept().
 *
 * Left alone: UDP (DNS among it), loopback destinations, sockets marked NODEMESH_MARK (the agent's
 * own, should one ever sit in a pod cgroup) and excluded destinations.
 *
 * Every TCP decision is counted by reason (nodemesh_reasons_v1) and, but for loopback, written
 * to the ring buffer nodemesh_events_v2 with the socket's cookie (see nodemesh_types.h).
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>

#include "nodemesh_lib.h"

#ifndef NODEMESH_OUTBOUND_PORT
#define NODEMESH_OUTBOUND_PORT 15001
#endif
#ifndef NODEMESH_MARK
#define NODEMESH_MARK 0x539
#endif

#define SOCK_ADDR_ALLOW 1 /* cgroup sock_addr programs return 1 to let the call proceed */

static __always_inline bool sock4_is_loopback(__u32 ip4)
{
    return (bpf_ntohl(ip4) >> 24) == 127;
}

/* Why a connection to (dst_ip4, dst_port) is to be left alone; 0 to capture it. */
static __always_inline __u32 sock4_pass_reason(struct bpf_sock_addr *ctx, __u32 dst_ip4,
                                               __u16 dst_port)
{
    struct bpf_sock *sk = ctx->sk;

    if (sock4_is_loopback(dst_ip4))
        return NODEMESH_REASON_LOOPBACK;
    if (sk->mark == NODEMESH_MARK) /* SO_MARK is set before connect() by the agent */
        return NODEMESH_REASON_AGENT_MARK;
    if (nm_excluded(dst_ip4, dst_port, NODEMESH_DIR_OUTBOUND))
        return NODEMESH_REASON_EXCLUDED;
    return 0;
}

/* One event per decision. The source port is known only when the app bound the socket before
 * connect(); otherwise the kernel picks it after this hook (sock_ops sees it). Loopback
 * destinations are counted only: an app talking to itself is not mesh traffic. */
static __always_inline void sock4_event(struct bpf_sock_addr *ctx, __u64 netns_cookie,
                                        __u64 cookie, __u32 reason, __u32 dst_ip4,
                                        __u16 dst_port, __u8 hook)
{
    if (reason == NODEMESH_REASON_LOOPBACK)
        return;
    bool captured = reason == NODEMESH_REASON_REDIRECTED;
    struct nodemesh_event_v2 ev = {
        .netns_cookie = netns_cookie,
        .socket_cookie = cookie,
        .dst_ip4 = dst_ip4,
        .listener_ip4 = captured ? bpf_htonl(0x7f000001) : 0,
        .src_port = (__u16)ctx->sk->src_port, /* host order; 0 until bound */
        .dst_port = dst_port,
        .listener_port = captured ? NODEMESH_OUTBOUND_PORT : 0,
        .direction = NODEMESH_DIR_OUTBOUND,
        .reason = (__u8)reason,
        .hook = hook,
    };
    nm_event(&ev);
}

/* Decide for an IPv4 destination; true when the connection is to go to the agent. */
static __always_inline bool sock4_capture(struct bpf_sock_addr *ctx, __u32 dst_ip4, __u8 hook)
{
    __u64 netns_cookie = bpf_get_netns_cookie(ctx);
    __u64 cookie = bpf_get_socket_cookie(ctx);
    __u16 dst_port = bpf_ntohs((__u16)ctx->user_port);
    __u32 reason = sock4_pass_reason(ctx, dst_ip4, dst_port);

    if (reason == 0) {
        /* Record first: a connection the agent cannot place must not be captured at all. */
        struct nodemesh_addr_v1 orig = {.ip4 = dst_ip4, .port = dst_port};
        bool recorded = nodemesh_pending_v1.update(&cookie, &orig) == 0;
        reason = recorded ? NODEMESH_REASON_REDIRECTED : NODEMESH_REASON_NO_RECORD;
    }
    bool captured = reason == NODEMESH_REASON_REDIRECTED;
    nm_count(netns_cookie, captured ? NM_CAPTURED_OUTBOUND : NM_PASSED);
    nm_count_reason(reason);
    sock4_event(ctx, netns_cookie, cookie, reason, dst_ip4, dst_port, hook);
    if (captured)
        ctx->user_port = bpf_htons(NODEMESH_OUTBOUND_PORT);
    return captured;
}

static __always_inline void sock4_connect(struct bpf_sock_addr *ctx)
{
    if (sock4_capture(ctx, ctx->user_ip4, NODEMESH_HOOK_CONNECT4))
        ctx->user_ip4 = bpf_htonl(0x7f000001); /* 127.0.0.1 */
}

/* ::ffff:a.b.c.d, words in network order */
static __always_inline bool sock6_is_v4_mapped(struct bpf_sock_addr *ctx)
{
    return ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 &&
           ctx->user_ip6[2] == bpf_htonl(0x0000ffff);
}

static __always_inline void sock6_connect(struct bpf_sock_addr *ctx)
{
    if (!sock6_is_v4_mapped(ctx))
        return;
    if (sock4_capture(ctx, ctx->user_ip6[3], NODEMESH_HOOK_CONNECT6))
        ctx->user_ip6[3] = bpf_htonl(0x7f000001); /* ::ffff:127.0.0.1 */
}

int nodemesh_connect4(struct bpf_sock_addr *ctx)
{
    if (ctx->protocol == IPPROTO_TCP)
        sock4_connect(ctx);
    return SOCK_ADDR_ALLOW;
}

int nodemesh_connect6(struct bpf_sock_addr *ctx)
{
    if (ctx->protocol == IPPROTO_TCP)
        sock6_connect(ctx);
    return SOCK_ADDR_ALLOW;
}
