"""nodemesh controller: the control plane (registry → mesh model → config pushes, CA, policy)."""
