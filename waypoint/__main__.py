"""`python -m waypoint`: run a waypoint (see waypoint.main)."""

import sys

from waypoint.main import main

sys.exit(main())
