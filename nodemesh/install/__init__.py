"""nodemesh on Kubernetes: the install's objects as data, and how to send them.

Layout: `values` (the typed `--set` tree) → builders, one module per concern (`crds` with
`crd_security`/`crd_traffic` over `openapi`; `rbac`; `controller`; `agent`; `waypoint`;
`dashboards`; shared names in `common`) → `render` (ordered objects, YAML) → `apply` (requests
planned as data, then sent with the kubernetes client). `files` and `__main__` keep
daemonset/*.yaml equal to the default render. `meshctl install|uninstall` is
nodemesh/cli/install_cmds.py.
"""
