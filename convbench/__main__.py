"""python -m convbench."""

from .cli import main

main(prog_name="convbench")
