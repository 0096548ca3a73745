"""`python -m nodemesh.install [--check]`: write daemonset/*.yaml from the renderer's defaults.

kubectl users apply these files; `meshctl install` renders the same objects with their --set
values. `--check` exits 1 when a file differs from what the code renders (tests run it too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nodemesh.install.files import rendered_files

DAEMONSET = Path(__file__).resolve().parents[2] / "daemonset"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nodemesh.install")
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    p.add_argument("--dir", type=Path, default=DAEMONSET)
    args = p.parse_args(argv)
    stale = []
    for name, text in rendered_files().items():
        path = args.dir / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m nodemesh.install", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
