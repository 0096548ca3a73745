"""What `meshctl analyze` reports: coded findings, their levels, and the table of codes.

A finding is istioctl analyze's "message": a stable code (NM0101) a user can search for and
suppress, a level, the object it concerns, and one message saying what is wrong and what to do.
The codes are data (`CODES`), one row per problem, so docs/analyze.md, the CLI's --suppress and
the tests all read the same table; a check can only emit a code listed here.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

DOCS = "docs/analyze.md"


class Level(enum.IntEnum):
    """Ordered so that `finding.level >= threshold` means "at or above the threshold"."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown level {text!r}; use Error, Warning or Info") from None


@dataclass(frozen=True)
class Code:
    code: str  # "NM0101": stable, never reused for another problem
    level: Level
    title: str  # a short CamelCase name, as istioctl's (ReferencedResourceNotFound)


_TABLE = (
    ("NM0001", Level.ERROR, "InvalidManifest"),
    ("NM0002", Level.ERROR, "ObjectLeftOut"),
    ("NM0101", Level.WARNING, "PolicySelectsNothing"),
    ("NM0102", Level.WARNING, "PolicySelectsOnlyUnenrolled"),
    ("NM0103", Level.ERROR, "PolicyTargetNotFound"),
    ("NM0104", Level.WARNING, "PolicyTargetHasNoWaypoint"),
    ("NM0105", Level.WARNING, "L7PolicyWithoutWaypoint"),
    ("NM0106", Level.WARNING, "DenyPolicyWithoutRules"),
    ("NM0201", Level.ERROR, "RouteParentNotFound"),
    ("NM0202", Level.ERROR, "RouteParentPortNotFound"),
    ("NM0203", Level.ERROR, "RouteBackendNotFound"),
    ("NM0204", Level.ERROR, "RouteBackendPortNotFound"),
    ("NM0205", Level.ERROR, "RouteRuleHasNoBackend"),
    ("NM0206", Level.WARNING, "RouteParentHasNoWaypoint"),
    ("NM0301", Level.ERROR, "WaypointNotFound"),
    ("NM0302", Level.WARNING, "WaypointNamespaceNotEnrolled"),
    ("NM0303", Level.WARNING, "WaypointNotReady"),
    ("NM0401", Level.ERROR, "NodeHasNoAgent"),
    ("NM0402", Level.INFO, "OptOutWithoutEnrollment"),
    ("NM0501", Level.ERROR, "TargetPortNameNotFound"),
    ("NM0502", Level.WARNING, "PortNameContradictsAppProtocol"),
    ("NM0601", Level.WARNING, "TrafficPolicyTargetNotFound"),
    ("NM0602", Level.WARNING, "TrafficPolicyConflict"),
)
CODES: dict[str, Code] = {code: Code(code, level, title) for code, level, title in _TABLE}


@dataclass(frozen=True)
class Finding:
    """One problem with one object, as `meshctl analyze` prints it."""

    code: str  # a key of CODES
    kind: str  # the object's kind ("" for a problem with a whole file)
    namespace: str  # its namespace ("" for cluster-scoped objects)
    name: str  # its name (for a file problem: the file)
    message: str  # what is wrong and what to do about it
    origin: str = ""  # where the object came from: "file.yaml:3" (document 3), or "" (cluster)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"finding code {self.code!r} is not in the CODES table")

    @property
    def level(self) -> Level:
        return CODES[self.code].level

    @property
    def title(self) -> str:
        return CODES[self.code].title

    @property
    def anchor(self) -> str:
        """Where the code is explained: the docs page and the code's own heading."""
        return f"{DOCS}#{self.code.lower()}"

    @property
    def object_name(self) -> str:
        """ "Kind namespace/name" as istioctl shows the resource a message is about."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}".strip()

    def sort_key(self) -> tuple:
        return (-self.level, self.code, self.kind, self.namespace, self.name, self.message)


@dataclass(frozen=True)
class Suppression:
    """`CODE` or `CODE=Kind namespace/name` (shell-style wildcards), as istioctl's --suppress."""

    code: str
    target: str  # "" suppresses the code everywhere

    @classmethod
    def parse(cls, text: str) -> Suppression:
        code, _, target = text.partition("=")
        code = code.strip().upper()
        if not any(fnmatch.fnmatchcase(known, code) for known in CODES):
            raise ValueError(
                f"--suppress {text!r}: no finding code matches {code!r}; codes look like NM0101 "
                f"(see {DOCS})"
            )
        return cls(code, target.strip())

    def matches(self, finding: Finding) -> bool:
        if not fnmatch.fnmatchcase(finding.code, self.code):
            return False
        return not self.target or fnmatch.fnmatchcase(finding.object_name, self.target)


def unsuppressed(findings: Iterable[Finding], rules: Iterable[Suppression]) -> list[Finding]:
    rules = list(rules)
    return [f for f in findings if not any(rule.matches(f) for rule in rules)]


def fails(findings: Iterable[Finding], threshold: Level) -> bool:
    """Whether any finding is at or above the threshold (the CLI then exits non-zero)."""
    return any(finding.level >= threshold for finding in findings)
