"""A trace for people: one line per hop, then the verdict and, on a denial, who denied.

Shared by `--explain` and the live trace (both produce `nodemesh.trace.hops.Trace`); machine
output is `Trace.to_dict` through the CLI's `-o json|yaml`. Kept free of click so it is a plain
function of the trace, testable on strings.
"""

from __future__ import annotations

from nodemesh.trace.hops import Hop, Trace, Verdict

HEADERS = ("#", "COMPONENT", "WHERE", "DECISION", "REASON")
_SOURCE = {"explain": "worked out from configuration, no traffic sent", "live": "observed"}


def render(trace: Trace) -> str:
    """The text form: a title, the hop table, per-hop details, the verdict, the notes."""
    request = f"  {trace.request}" if trace.request else ""
    lines = [
        f"trace {trace.source} → {trace.destination}{request}",
        f"({_SOURCE.get(trace.mode, trace.mode)})",
        "",
    ]
    rows = [
        (str(i), str(hop.component), hop.where, _decision(hop), hop.reason)
        for i, hop in enumerate(trace.hops, 1)
    ]
    lines += _table(HEADERS, rows, details=[hop.details for hop in trace.hops])
    lines += ["", verdict_line(trace)]
    lines += [f"note: {note}" for note in trace.notes]
    return "\n".join(lines)


def verdict_line(trace: Trace) -> str:
    """ "verdict: DENIED at destination-agent by AuthorizationPolicy shop/x rule 0"."""
    hop = trace.stopped_at
    text = f"verdict: {trace.verdict} at {hop.component}"
    if trace.verdict is Verdict.DENIED and hop.policy:
        rule = f" rule {hop.rule}" if hop.rule is not None else ""
        text += f" by {_policy_kind(hop)} {hop.policy}{rule}"
    if hop.status is not None:
        text += f" (HTTP {hop.status})"
    return text


def _decision(hop: Hop) -> str:
    return f"{hop.decision} {hop.status}" if hop.status is not None else hop.decision


def _policy_kind(hop: Hop) -> str:
    strict = hop.code == "denied_plaintext_strict"
    return "PeerAuthentication" if strict else "AuthorizationPolicy"


def _table(headers, rows, details) -> list[str]:
    """Columns padded to width; the last column (the reason) is left to wrap in the terminal."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers) - 1)]

    def line(cells) -> str:
        padded = [c.ljust(w) for c, w in zip(cells, widths, strict=False)]
        return "   ".join([*padded, cells[-1]]).rstrip()

    out = [line(headers)]
    indent = " " * (sum(widths[:2]) + 6)
    for row, extra in zip(rows, details, strict=True):
        out.append(line(row))
        out += [f"{indent}{key}: {value}" for key, value in extra]
    return out
