"""Write (``escalator schemas write``) or verify (``escalator schemas check``) the generated wire contracts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["write", "check"])
    parser.add_argument("--dir", default="schemas", help="the schemas directory (default: schemas)")


def run(args: argparse.Namespace) -> int:
    from ..contracts import differences, generate

    root = Path(args.dir)
    if args.action == "check":
        problems = differences(root)
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    for rel, content in generate().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"wrote {path}")
    return 0
