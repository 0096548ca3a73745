"""`python -m node_agent.cni`: the CNI plugin (the `nodemesh-cni` wrapper runs this)."""

import sys

from node_agent.cni.plugin import main

sys.exit(main())
