"""`python -m nodemesh.dashboards [--check] [DIR]`: regenerate (or check) the dashboard JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nodemesh.dashboards.render import DEFAULT_DIR, stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodemesh.dashboards", description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a file differs from the code"
    )
    args = parser.parse_args(argv)
    if args.check:
        drifted = stale(args.directory)
        for name in drifted:
            print(f"{args.directory / name}: out of date; run python -m nodemesh.dashboards")
        return 1 if drifted else 0
    for path in write(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
