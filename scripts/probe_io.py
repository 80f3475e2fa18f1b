"""What the probe scripts share: print a markdown table and keep it as $OUT/NAME when OUT is set."""

from __future__ import annotations

import os


def emit(lines: list[str], name: str) -> None:
    text = "\n".join(lines)
    print(text)
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)  # a call's first probe may be the one to make it
        with open(os.path.join(os.environ["OUT"], name), "w") as f:
            f.write(text + "\n")
