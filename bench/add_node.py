"""Add-node benchmark on the testbed: two machines built with site.yml, then one timed
`add-node.yml --limit node3` run (packages cached in the image, as the target assumes),
a second run that must change nothing, and the memory of an idle node's services.

Prints one JSON object as its last line; also writes bench/results/add-node.json:
  add_node_s      one add-node.yml run (target <= 120)
  rerun_changed   tasks the second run changed on node3 (target 0)
  node_rss_mb     etcd + Icecast + agent on an idle node (target <= 150), per node
  agent_rss_mb    the agent alone (target <= 40), per node
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO_DIR, report, require_root

sys.path.insert(0, str(REPO_DIR / "molecule" / "testbed"))
import demo
import testbed

SCENARIO = REPO_DIR / "molecule" / "add-node"
VENV_BIN = REPO_DIR / ".venv" / "bin"
SERVICES = ("etcd", "etcd-gateway", "icecast2", "radio-agent")


def playbook(inventory: str, name: str, site: Path, *extra: str) -> tuple[float, str]:
    demo.build_agent_package()
    started = time.monotonic()
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            f"--inventory={SCENARIO / inventory}",
            f"--extra-vars=radio_site_dir={site}",
            *extra,
            str(REPO_DIR / "playbooks" / name),
        ],
        cwd=REPO_DIR,
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stdout[-3000:]}")
    return time.monotonic() - started, result.stdout


def changed_on(output: str, host: str) -> int:
    match = re.search(rf"^{host}\s+:\s+ok=\d+\s+changed=(\d+)", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no recap for {host}")
    return int(match.group(1))


def rss_mb(node: str) -> dict[str, float]:
    """Resident memory of each running service, read inside the node (its own PIDs)."""
    found = {}
    for service in SERVICES:
        shown = testbed.run_in(node, ["systemctl", "show", "-p", "MainPID", service]).stdout
        pid = int(shown.strip().split("=")[1] or 0)
        if pid:
            status = testbed.run_in(node, ["cat", f"/proc/{pid}/status"]).stdout
            vmrss = re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE)
            if vmrss is None:
                raise RuntimeError(f"{node}: no VmRSS for {service} (PID {pid})")
            kib = int(vmrss.group(1))
            found[service] = round(kib / 1024, 1)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    require_root(parser)
    parser.parse_args()
    site = Path(tempfile.mkdtemp(prefix="bench-add-node-"))
    shutil.copytree(SCENARIO / "radios", site / "radios")
    testbed.down()
    testbed.build_image()
    try:
        testbed.up(["node1", "node2", "node3"])
        site_s, _ = playbook("inventory-two", "site.yml", site)
        playbook("inventory-two", "radios.yml", site)
        add_node_s, _ = playbook("inventory-three", "add-node.yml", site, "--limit=node3")
        _, rerun = playbook("inventory-three", "add-node.yml", site, "--limit=node3")
        time.sleep(10)  # let the new node settle to idle before measuring memory
        memory = {node: rss_mb(node) for node in ("node1", "node2", "node3")}
    finally:
        testbed.down()
        shutil.rmtree(site, ignore_errors=True)
    report(
        "add-node",
        {
            "add_node_s": round(add_node_s, 1),
            "rerun_changed": changed_on(rerun, "node3"),
            "node_rss_mb": {node: round(sum(used.values()), 1) for node, used in memory.items()},
            "agent_rss_mb": {node: values.get("radio-agent") for node, values in memory.items()},
            "services_rss_mb": memory,
            "site_two_nodes_s": round(site_s, 1),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
