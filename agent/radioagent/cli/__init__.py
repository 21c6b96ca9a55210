"""`radioctl`: the operator's command line."""

from __future__ import annotations

import argparse
import sys

from radioagent import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radioctl",
        description="Operate a radio cluster: status, mounts, nodes, leadership, backups.",
    )
    parser.add_argument("--version", action="version", version=f"radioctl {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("radioctl: no commands are built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
