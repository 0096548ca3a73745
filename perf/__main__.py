"""`make bench` (`python -m perf [NAME...]`): every benchmark, or the ones named.

Each benchmark prints its own table; a baseline measured in the same run sits beside mesh
figures. Nothing here asserts on timing: these are reports, read by people.
"""

from __future__ import annotations

import sys

from perf import controller_push, datapath_baseline, waypoint_bench

BENCHMARKS = {
    "datapath": lambda: datapath_baseline.main(),
    "controller": lambda: controller_push.report(controller_push.run()),
    "waypoint": lambda: waypoint_bench.main(),
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; have: {', '.join(BENCHMARKS)}")
        return 2
    for name in names:
        print(f"== {name}")
        BENCHMARKS[name]()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
