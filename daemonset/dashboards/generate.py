"""Regenerate the dashboards in this folder from code: `python daemonset/dashboards/generate.py`.

The dashboards are defined in `nodemesh/dashboards/`; this script only forwards to
`python -m nodemesh.dashboards` (pass `--check` to verify the JSON files are up to date).
"""

import sys

from nodemesh.dashboards.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
