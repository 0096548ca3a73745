"""The per-node agent: captures enrolled pods, runs the L4 mTLS tunnel, enforces L4 policy."""
