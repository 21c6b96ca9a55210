"""`radioctl`: the operator's command line."""

from radioagent.cli.main import main

__all__ = ["main"]
