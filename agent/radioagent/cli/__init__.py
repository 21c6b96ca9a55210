"""`radioctl`: the operator's command line (entry point `radioagent.cli.main:main`).

This package's own module only sets the environment: importing `radioagent.cli.output`
(pure) must not pull in etcd3 and grpc, which `radioagent.cli.main` does.
"""

import os

# gRPC's C core writes TLS handshake failures to stderr itself; radioctl reports every
# failure in one line of its own. Set before grpc is first imported, which reads it once;
# a package's module runs before any of its submodules.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
