"""The mpts-fast command line (placeholder until the commands land)."""
import click


@click.group()
def main() -> None:
    """mpts-fast: deep active learning with fast kernels."""
