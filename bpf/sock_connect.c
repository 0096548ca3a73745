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

static __always_inline bool sock4_skip(struct bpf_sock_addr *ctx, __u32 dst_ip4, __u16 dst_port)
{
    struct bpf_sock *sk = ctx->sk;

    if (sock4_is_loopback(dst_ip4))
        return true;
    if (sk->mark == NODEMESH_MARK) /* SO_MARK is set before connect() by the agent */
        return true;
    return nm_excluded(dst_ip4, dst_port, NODEMESH_DIR_OUTBOUND);
}

/* Decide for an IPv4 destination; true when the connection is to go to the agent. */
static __always_inline bool sock4_capture(struct bpf_sock_addr *ctx, __u32 dst_ip4)
{
    __u64 netns_cookie = bpf_get_netns_cookie(ctx);
    __u16 dst_port = bpf_ntohs((__u16)ctx->user_port);

    if (sock4_skip(ctx, dst_ip4, dst_port)) {
        nm_count(netns_cookie, NM_PASSED);
        return false;
    }
    /* Record first: a connection the agent cannot place must not be captured at all. */
    __u64 cookie = bpf_get_socket_cookie(ctx);
    struct nodemesh_addr_v1 orig = {.ip4 = dst_ip4, .port = dst_port};
    if (nodemesh_pending_v1.update(&cookie, &orig) != 0) {
        nm_count(netns_cookie, NM_PASSED);
        return false;
    }
    ctx->user_port = bpf_htons(NODEMESH_OUTBOUND_PORT);
    nm_count(netns_cookie, NM_CAPTURED_OUTBOUND);
    return true;
}

static __always_inline void sock4_connect(struct bpf_sock_addr *ctx)
{
    if (sock4_capture(ctx, ctx->user_ip4))
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
    if (sock4_capture(ctx, ctx->user_ip6[3]))
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
