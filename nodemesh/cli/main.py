"""`meshctl`: a thin click group over nodemesh's library objects."""

import click


@click.group()
def cli() -> None:
    """nodemesh's command-line tool."""


def main() -> None:
    cli()
