"""`radioctl`: the operator's command line."""

import os

# gRPC's C core writes TLS handshake failures to stderr itself; radioctl reports every
# failure in one line of its own. Set before grpc is first imported, which reads it once.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from radioagent.cli.main import main

__all__ = ["main"]
