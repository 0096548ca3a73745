"""`python -m controller`: run the nodemesh controller (see controller.main)."""

import sys

from controller.main import main

sys.exit(main())
