"""Logging set-up shared by every nodemesh process: the level comes from NODEMESH_LOG_LEVEL.

Why an environment variable and not a flag: the install sets it once on every container
(nodemesh.install.common.env), including ones whose command line is built elsewhere (the
waypoint's, by the controller), and local mode inherits it from the shell that ran `meshctl`.
An unknown value is an error, not a silent "info": an operator who asked for "verbose" and got
nothing would chase the wrong problem.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

LOG_LEVEL_ENV = "NODEMESH_LOG_LEVEL"
LOG_LEVELS = ("debug", "info", "warning", "error")  # what values.log_level offers, too
DEFAULT_LEVEL = "info"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogLevelError(ValueError):
    """NODEMESH_LOG_LEVEL holds a value that is not one of LOG_LEVELS."""


def level_from(environ: Mapping[str, str]) -> int:
    """The logging level NODEMESH_LOG_LEVEL asks for (unset or empty: info)."""
    name = (environ.get(LOG_LEVEL_ENV) or DEFAULT_LEVEL).strip().lower()
    if name not in LOG_LEVELS:
        raise LogLevelError(
            f"{LOG_LEVEL_ENV}={environ.get(LOG_LEVEL_ENV)!r} is not a log level; "
            f"use one of {', '.join(LOG_LEVELS)}"
        )
    return logging.getLevelName(name.upper())


def level_name(environ: Mapping[str, str] | None = None) -> str:
    """The level's name as NODEMESH_LOG_LEVEL takes it, for processes this one starts."""
    return logging.getLevelName(level_from(os.environ if environ is None else environ)).lower()


def configure(prog: str, environ: Mapping[str, str] | None = None) -> int:
    """Configure the root logger for process `prog`; exits (status 2) on a bad level."""
    try:
        level = level_from(os.environ if environ is None else environ)
    except LogLevelError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
    return level
