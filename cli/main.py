"""The mpts-fast command line."""
from __future__ import annotations

import click

from mpts_fast.cli import compare as compare_module
from mpts_fast.cli import datasets as datasets_module
from mpts_fast.cli import demo as demo_module
from mpts_fast.cli import info as info_module
from mpts_fast.cli import run as run_module
from mpts_fast.cli import study as study_module


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mpts-fast")
def main() -> None:
    """mpts-fast: deep active learning with fast C++/CUDA kernels."""


main.add_command(info_module.info)
main.add_command(demo_module.demo)
main.add_command(run_module.run)
main.add_command(compare_module.compare)
main.add_command(datasets_module.datasets)
main.add_command(study_module.study)


if __name__ == "__main__":
    main()
