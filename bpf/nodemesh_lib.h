/* Helpers shared by the hooks: exclusions, counters, events (see nodemesh_types.h for reasons).
 *
 * The loader puts this file at the top of the one text it compiles (BCC rewrites map calls such
 * as nodemesh_counters_v1.lookup() only in its main file), so it is part of every hook. */
#ifndef NODEMESH_LIB_H
#define NODEMESH_LIB_H

#include "nodemesh_maps.h"

enum nodemesh_counter { NM_CAPTURED_OUTBOUND, NM_CAPTURED_INBOUND, NM_PASSED };

/* Is (ip4, port) excluded in `direction`? Checked as the exact pair, the address on any port,
 * and the port on any address: three lookups in a small hash, cheaper than a walk. */
static __always_inline bool nm_excluded(__u32 ip4, __u16 port, __u32 direction)
{
    struct nodemesh_addr_v1 keys[3] = {
        {.ip4 = ip4, .port = port},
        {.ip4 = ip4, .port = 0},
        {.ip4 = 0, .port = port},
    };
#pragma unroll
    for (int i = 0; i < 3; i++) {
        __u32 *dirs = nodemesh_exclusions_v1.lookup(&keys[i]);
        if (dirs && (*dirs & direction))
            return true;
    }
    return false;
}

static __always_inline void nm_count(__u64 netns_cookie, enum nodemesh_counter which)
{
    struct nodemesh_counters_v1 zero = {};
    struct nodemesh_counters_v1 *c = nodemesh_counters_v1.lookup_or_try_init(&netns_cookie, &zero);
    if (!c)
        return;
    /* Per-CPU values: plain increments are safe. */
    if (which == NM_CAPTURED_OUTBOUND)
        c->captured_outbound++;
    else if (which == NM_CAPTURED_INBOUND)
        c->captured_inbound++;
    else
        c->passed++;
}

static __always_inline void nm_count_reason(__u32 reason)
{
    __u64 *n = nodemesh_reasons_v1.lookup(&reason);
    if (n) /* per-CPU: a plain increment is safe */
        (*n)++;
}

/* Best effort: a full ring buffer drops the event (counted), never the connection. The caller
 * fills everything but the time. */
static __always_inline void nm_event(struct nodemesh_event_v2 *ev)
{
    ev->time_ns = bpf_ktime_get_boot_ns();
    if (nodemesh_events_v2.ringbuf_output(ev, sizeof(*ev), 0) != 0) {
        __u32 zero = 0;
        __u64 *drops = nodemesh_event_drops_v1.lookup(&zero);
        if (drops)
            (*drops)++;
    }
}

#endif
