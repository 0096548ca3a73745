/* Every map of nodemesh's datapath, declared once. All hooks are compiled into one BCC module
 * (capture.c), so they share these maps; the agent reaches them by name.
 *
 * Names carry the project prefix and the layout version of their key and value
 * (see nodemesh_types.h). Sizes come from the loader's cflags.
 */
#ifndef NODEMESH_MAPS_H
#define NODEMESH_MAPS_H

#include "nodemesh_types.h"

#ifndef NODEMESH_MAX_PODS
#define NODEMESH_MAX_PODS 1024
#endif
#ifndef NODEMESH_MAX_FLOWS
#define NODEMESH_MAX_FLOWS 65536
#endif
#ifndef NODEMESH_MAX_EXCLUSIONS
#define NODEMESH_MAX_EXCLUSIONS 256
#endif
#ifndef NODEMESH_EVENT_PAGES
#define NODEMESH_EVENT_PAGES 64
#endif

/* connect4 → sock_ops: original destination by socket cookie, until the source port is known.
 * LRU: a connect() that never completes leaves an entry nobody deletes. */
BPF_TABLE("lru_hash", __u64, struct nodemesh_addr_v1, nodemesh_pending_v1, NODEMESH_MAX_FLOWS);

/* sock_ops → agent: original destination (and the client's socket cookie) by (netns, client
 * address). The agent deletes the entry once it has read it; LRU again covers connections the
 * agent never accepted. */
BPF_TABLE("lru_hash", struct nodemesh_flow_key_v1, struct nodemesh_orig_dst_v2, nodemesh_orig_dst_v2,
          NODEMESH_MAX_FLOWS);

/* Agent → hooks: destinations and ports never captured, value = NODEMESH_DIR_* bits. */
BPF_HASH(nodemesh_exclusions_v1, struct nodemesh_addr_v1, __u32, NODEMESH_MAX_EXCLUSIONS);

/* Agent → sk_lookup: enrolled pods by IP, and each pod's inbound listener (the agent's socket
 * inside the pod's netns). A sockhash drops a socket by itself when the socket closes, so a dead
 * agent means plain traffic, not a black hole. BCC's BPF_SOCKHASH has no lookup(); the generic
 * table declaration does. */
BPF_HASH(nodemesh_pods_v1, __u32, struct nodemesh_pod_v1, NODEMESH_MAX_PODS);
BPF_TABLE("sockhash", __u32, __u64, nodemesh_inbound_v1, NODEMESH_MAX_PODS);

/* Agent → sk_lookup: the agent's own deliveries to a pod's app from the client's address
 * (IP_TRANSPARENT), by that source (client ip, the agent's bound port); value = the pod's IP.
 * Registered between bind() and connect(), deleted once connected, so sk_lookup does not hand the
 * agent's SYN back to the agent. LRU: an entry an agent never deleted ages out. */
BPF_TABLE("lru_hash", struct nodemesh_addr_v1, __u32, nodemesh_deliveries_v1, NODEMESH_MAX_FLOWS);

BPF_PERCPU_HASH(nodemesh_counters_v1, __u64, struct nodemesh_counters_v1, NODEMESH_MAX_PODS);

/* Decisions by NODEMESH_REASON_*, one copy per CPU: exact, whatever the ring buffer drops. */
BPF_PERCPU_ARRAY(nodemesh_reasons_v1, __u64, NODEMESH_REASONS);

/* Capture events for the agent (flow events at point "captured"). NODEMESH_EVENT_PAGES pages of
 * 4 KiB, a power of two; a record takes 56 bytes with its header. A full ring drops the event,
 * never the connection, and counts it in nodemesh_event_drops_v1 (index 0, per CPU). */
BPF_RINGBUF_OUTPUT(nodemesh_events_v2, NODEMESH_EVENT_PAGES);
BPF_PERCPU_ARRAY(nodemesh_event_drops_v1, __u64, 1);

#endif
