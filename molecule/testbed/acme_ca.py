"""Debian's pebble as the testbed's ACME CA: it runs in the controller namespace (the
nodes reach it at the controller's address), resolves names with a node's DNS (the
cluster's own zone), and validates HTTP-01 on the nodes' port 80. Its process lives in a
cgroup of its own, which `testbed.py down` kills with the machines.

    acme_ca.py up --dns-server 10.77.0.11:53 [--http-port 80]   # prints its URL, CA file
    acme_ca.py down
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import testbed

PEBBLE_DIR = testbed.RUN_DIR / "pebble"
UNIT = testbed.PEBBLE_CGROUP  # the cgroup's name, as the nodes' are theirs
PORT, MANAGEMENT_PORT, TLS_ALPN_PORT = 14000, 15000, 5001
START_TIMEOUT = 15.0


def _openssl(*arguments: str) -> None:
    testbed.run(["openssl", *arguments], timeout=30)


def _make_certificates(address: str) -> tuple[Path, Path, Path]:
    """A CA and pebble's own server certificate for `address` (its HTTPS, not what it
    issues)."""
    ca_key, ca_cert = PEBBLE_DIR / "ca.key", PEBBLE_DIR / "ca.crt"
    key, request, cert = (PEBBLE_DIR / f"pebble{suffix}" for suffix in (".key", ".csr", ".crt"))
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(
        *("req", "-x509", *curve, "-keyout", str(ca_key), "-out", str(ca_cert)),
        *("-days", "2", "-subj", "/CN=testbed ACME server CA"),
    )
    _openssl("req", *curve, "-keyout", str(key), "-out", str(request), "-subj", "/CN=pebble")
    extensions = PEBBLE_DIR / "pebble.ext"
    extensions.write_text(f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n")
    _openssl(
        *("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key)),
        *("-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions)),
    )
    return ca_cert, cert, key


def directory_url(address: str) -> str:
    return f"https://{address}:{PORT}/dir"


def start(dns_server: str, http_port: int) -> dict[str, str]:
    """Start pebble (again, if it ran) and wait for its directory; what the inventory
    needs: the directory URL and the CA file of pebble's own HTTPS."""
    state = testbed.load_state()
    if "controller" not in state:
        raise testbed.TestbedError("no testbed: run `testbed.py up` first")
    address = state["controller"]["address"]
    stop()
    PEBBLE_DIR.mkdir(parents=True, exist_ok=True)
    ca_cert, cert, key = _make_certificates(address)
    config = PEBBLE_DIR / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"{address}:{PORT}",
                    "managementListenAddress": f"{address}:{MANAGEMENT_PORT}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": http_port,
                    "tlsPort": TLS_ALPN_PORT,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    argv = ["pebble", "-config", str(config), "-dnsserver", dns_server]
    with (PEBBLE_DIR / "pebble.log").open("ab") as log_file:
        subprocess.Popen(  # it outlives this command: the cgroup is what ends it
            testbed.cgroup_wrapper(UNIT, ["ip", "netns", "exec", testbed.CONTROLLER_NS, *argv]),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        )
    _wait_answering(directory_url(address), ca_cert)
    return {"directory_url": directory_url(address), "ca_file": str(ca_cert)}


def _wait_answering(url: str, ca_cert: Path) -> None:
    probe = (
        "import ssl, sys, urllib.request; "
        f"urllib.request.urlopen({url!r}, timeout=2, "
        f"context=ssl.create_default_context(cafile={str(ca_cert)!r}))"
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if (
            testbed.run_in_controller(["/usr/bin/python3", "-c", probe], check=False).returncode
            == 0
        ):
            return
        time.sleep(0.2)
    tail = (PEBBLE_DIR / "pebble.log").read_text(errors="replace")[-2000:]
    raise testbed.TestbedError(f"pebble did not answer {url} in {START_TIMEOUT:g} s: {tail}")


def stop() -> None:
    testbed.kill_cgroup(UNIT)
    testbed.remove_cgroups(UNIT)


def issuing_root(address: str) -> bytes:
    """The root pebble signs certificates with (new at each start), fetched in the
    controller namespace."""
    url = f"https://{address}:{MANAGEMENT_PORT}/roots/0"
    ca_file = PEBBLE_DIR / "ca.crt"
    fetch = (
        "import ssl, sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen("
        f"{url!r}, timeout=5, context=ssl.create_default_context(cafile={str(ca_file)!r})).read())"
    )
    return testbed.run_in_controller(["/usr/bin/python3", "-c", fetch]).stdout.encode()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acme_ca.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start pebble in the controller namespace")
    up.add_argument("--dns-server", required=True, help="host:port of a node's DNS")
    up.add_argument("--http-port", type=int, default=80)
    sub.add_parser("down", help="stop it (testbed.py down does too)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "up":
            print(json.dumps(start(args.dns_server, args.http_port)))
        else:
            stop()
    except testbed.TestbedError as error:
        print(f"acme_ca: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
