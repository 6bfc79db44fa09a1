"""The mpts-fast command line."""
from __future__ import annotations

import click

from mpts_fast.cli import compare as compare_module
from mpts_fast.cli import datasets as datasets_module
from mpts_fast.cli import demo as demo_module
from mpts_fast.cli import export as export_module
from mpts_fast.cli import info as info_module
from mpts_fast.cli import run as run_module
from mpts_fast.cli import select as select_module
from mpts_fast.cli import strategies as strategies_module
from mpts_fast.cli import study as study_module


class _Commands(click.Group):
    """Exit codes, the same for every command: 0 success, 1 runtime error (click.ClickException), 2 usage error
    (click.UsageError / BadParameter), 130 interrupted. Commands that can say how to resume catch Ctrl-C themselves;
    this is the fallback, replacing click's 'Aborted!' and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            from mpts_fast import distributed

            if distributed.is_primary():  # under torchrun: once, from rank 0
                click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mpts-fast")
def main() -> None:
    """mpts-fast: deep active learning with fast C++/CUDA kernels."""


main.add_command(info_module.info)
main.add_command(demo_module.demo)
main.add_command(run_module.run)
main.add_command(compare_module.compare)
main.add_command(export_module.export)
main.add_command(strategies_module.strategies)
main.add_command(datasets_module.datasets)
main.add_command(study_module.study)
main.add_command(select_module.select)


if __name__ == "__main__":
    main()
