"""nodemesh's chained CNI plugin: tells the node agent about a pod before its first packet.

Theory of operation. The container runtime runs the plugin once per sandbox operation, after the
cluster's own CNI plugin (we are chained: the conflist lists us last, so `prevResult` already holds
the pod's addresses). The plugin does no networking of its own:

- ADD: find the pod's cgroup (node_agent.cni.cgroup), send the pod (namespace, name, uid,
  container id, netns path, IPs, cgroup) to the agent over its unix socket (node_agent.cni.wire),
  and answer only once the agent says capture is in place (or that the pod is not enrolled). An
  agent that cannot be reached fails the ADD with code 11 ("try again later"), so the runtime
  retries and no enrolled pod ever starts uncaptured (fail closed); namespaces in the config's
  `excludeNamespaces` (the agent's own, kube-system) are passed through without asking.
- DEL: tell the agent, tolerating a missing netns and an absent agent: the spec asks DEL to
  succeed as far as possible, and the agent forgets a sandbox it never hears about on its own
  (its config no longer names the pod).
- CHECK: ask the agent whether capture is still in place.
- VERSION, STATUS, GC: answered locally.

Layout: `protocol` turns environment + stdin into a typed request and results into stdout bytes
(sans-I/O); `wire` is the agent socket's framing (shared with node_agent.cni_server); `cgroup`
finds the pod's cgroup; `plugin` is the thin executable (`python -m node_agent.cni`, installed as
the `nodemesh-cni` wrapper). Everything here is standard library only: the runtime starts the
plugin for every pod, so it must start fast.
"""
