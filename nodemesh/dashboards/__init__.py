"""Grafana dashboards for nodemesh, generated from code with grafanalib.

Theory of operation: one module per dashboard (`mesh`, `workload`, `agent`, `waypoint`,
`control_plane`) lists sections of panels built with the helpers in `panels` and the PromQL
shapes in `exprs`; `render` turns them into deterministic JSON that is checked in under
`daemonset/dashboards/` (regenerate with `python -m nodemesh.dashboards`). Three checks keep the
files honest, all usable without Grafana or Prometheus:

- `catalogue` reads the metric names and labels from the agent's, waypoint's and controller's
  metric objects, and `promql` extracts the series and labels every query uses, so a query that
  names a metric or label the code does not export fails a unit test;
- `loader` rebuilds each JSON file as grafanalib model objects and renders it again, which must
  give the same JSON (grafanalib has no JSON loader of its own);
- `evaluate` runs every panel query through a caller-given query function (a real Prometheus in
  the namespaced tests) with Grafana's variables substituted, and lists the queries with no data.

grafanalib is a development dependency (the `dev` extra): nothing at run time imports this package.
"""
