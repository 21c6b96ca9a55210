"""`radio-agent`: the node daemon's entry point."""

from __future__ import annotations

import argparse
import sys

from radioagent import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radio-agent",
        description="Node agent of a self-healing Icecast cluster.",
    )
    parser.add_argument("--version", action="version", version=f"radio-agent {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    # The coordination loop lands with the agent core; say so rather than pretend to run.
    print("radio-agent: the agent core is not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
