/* sock_ops: completes outbound capture, attached to each enrolled pod's cgroup with connect4.
 *
 * connect4 runs before the source port exists, so it can only key the original destination by
 * socket cookie, which the agent cannot see from its side of the connection. When the client's
 * connection is established (the client has processed the SYN-ACK and is about to send the ACK
 * that lets the agent's accept() return), this moves the record to a key the agent does know:
 * (pod netns cookie, client ip, client port) = (SO_NETNS_COOKIE, getpeername()) of the accepted
 * socket. Established, not TCP_CONNECT: a connection that never completes leaves no record.
 * The record keeps the client socket's cookie, the key of the capture event connect4 wrote, so the
 * agent can join that event with the connection it accepted.
 */
#include <uapi/linux/bpf.h>

#include "nodemesh_lib.h"

#define NM_AF_INET 2
#define NM_AF_INET6 10
#define SOCK_OPS_OK 1

static __always_inline void sockops4_established(struct bpf_sock_ops *skops)
{
    __u64 cookie = bpf_get_socket_cookie(skops);
    struct nodemesh_addr_v1 *pending = nodemesh_pending_v1.lookup(&cookie);
    if (!pending)
        return; /* not a captured connection */

    struct nodemesh_orig_dst_v2 orig = {
        .ip4 = pending->ip4,
        .port = pending->port,
        .socket_cookie = cookie, /* joins connect4's capture event (nodemesh_event_v2) */
    };
    struct nodemesh_flow_key_v1 key = {
        .netns_cookie = bpf_get_netns_cookie(skops),
        .ip4 = skops->local_ip4,            /* network order */
        .port = (__u16)skops->local_port,   /* host order */
    };
    nodemesh_orig_dst_v2.update(&key, &orig);
    nodemesh_pending_v1.delete(&cookie);
}

int nodemesh_sock_ops(struct bpf_sock_ops *skops)
{
    /* AF_INET6 too: a dual-stack socket that connect6 captured talks IPv4 through
     * ::ffff:127.0.0.1, and local_ip4 holds its IPv4 source all the same. Sockets that were not
     * captured have no pending record and cost one lookup. */
    if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
        (skops->family == NM_AF_INET || skops->family == NM_AF_INET6))
        sockops4_established(skops);
    return SOCK_OPS_OK;
}
