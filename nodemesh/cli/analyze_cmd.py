"""`meshctl analyze`: coded findings about configuration, like `istioctl analyze`.

The analysis is controller.analyze's; this command reads the inputs it names, filters, prints,
and sets the exit code: 0 when no finding is at or above --fail-threshold, 79 when one is
(istioctl analyze's code, so CI scripts written for it keep working), 1 when the inputs cannot be
read at all (no such cluster), 2 for usage errors.
"""

from __future__ import annotations

import click

from controller.analyze import Finding, Level, Suppression, fails, run_checks
from controller.analyze.findings import unsuppressed
from controller.analyze.inputs import gather
from controller.analyze.render import as_data, as_text
from nodemesh.cli.context import Ctx, pass_ctx, user_errors
from nodemesh.cli.output import emit

FINDINGS_EXIT = 79


@click.command("analyze")
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    help="Manifest file or directory ('-' for stdin); repeatable.",
)
@click.option(
    "--cluster",
    "use_cluster",
    is_flag=True,
    help="Analyze the local cluster's current objects (with -f: the files over them).",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True
)
@click.option(
    "--suppress",
    multiple=True,
    metavar="CODE[=KIND NS/NAME]",
    help="Hide a finding code (wildcards allowed), optionally for one object only; repeatable.",
)
@click.option(
    "--fail-threshold",
    type=click.Choice(["Error", "Warning", "Info"], case_sensitive=False),
    default="Error",
    show_default=True,
    help=f"Exit {FINDINGS_EXIT} when a finding is at or above this level.",
)
@pass_ctx
def analyze(
    ctx: Ctx,
    paths: tuple[str, ...],
    use_cluster: bool,
    output: str,
    suppress: tuple[str, ...],
    fail_threshold: str,
) -> None:
    """Report configuration problems as coded findings (docs/analyze.md)."""
    if not paths and not use_cluster:
        raise click.UsageError("nothing to analyze: give -f FILE_OR_DIR, --cluster, or both")
    try:
        rules = [Suppression.parse(text) for text in suppress]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--suppress") from None
    with user_errors():
        inputs = gather(paths, ctx.state if use_cluster else None)
    findings: list[Finding] = sorted(
        {*inputs.findings, *run_checks(inputs.world())}, key=Finding.sort_key
    )
    findings = unsuppressed(findings, rules)
    if output == "text":
        click.echo(as_text(findings, _analyzed(paths, use_cluster, ctx.cluster)))
    else:
        emit(as_data(findings), output)
    if fails(findings, Level.parse(fail_threshold)):
        raise SystemExit(FINDINGS_EXIT)


def _analyzed(paths: tuple[str, ...], use_cluster: bool, cluster: str) -> str:
    parts = [", ".join(paths)] if paths else []
    if use_cluster:
        parts.append(f"cluster {cluster!r}")
    return " over ".join(parts)
