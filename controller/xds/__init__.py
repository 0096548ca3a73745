"""The controller's side of delta xDS: per-subscriber push state, without I/O (see ``delta``)."""

from controller.xds.delta import DeltaSubscription, counter_nonces, plan_push

__all__ = ["DeltaSubscription", "counter_nonces", "plan_push"]
