"""A real Prometheus (Debian's) scraping test agents on loopback, with the project's alert
rules, for tests of the rules and the dashboard against live metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from .icecast import REPO_DIR
from .ports import LOOPBACK, free_port
from .processes import ManagedProcess, ServiceDirectory

RULES = REPO_DIR / "roles/monitoring/files/radio-alerts.yml"
START_TIMEOUT_SECONDS = 15.0


class PrometheusServer:
    def __init__(self, agent_targets: dict[str, str], interval_seconds: int = 1) -> None:
        """`agent_targets`: node name -> host:port of its agent's front door."""
        self.port = free_port()
        self.directory = ServiceDirectory("prometheus")
        every = f"{interval_seconds}s"
        config = {
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "radio-agent",
                    "honor_labels": True,  # as the monitoring role: the agents' node label
                    "static_configs": [
                        {"targets": [target], "labels": {"node": node}}
                        for node, target in sorted(agent_targets.items())
                    ],
                }
            ],
        }
        config_path = self.directory.write("prometheus.yml", yaml.safe_dump(config))
        self.process = ManagedProcess(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.directory.path / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            self.directory.path / "stdout.log",
            cwd=self.directory.path,
        )

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.process.start()

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=2) as response:
                return response.status == 200

        self.process.wait_serving(
            ready, timeout=START_TIMEOUT_SECONDS, what="Prometheus to be ready"
        )

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/v1/{path}{query}", timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as error:  # a bad query: Prometheus says why
            return json.loads(error.read())

    def query(self, expression: str) -> dict:
        return self.api("query", query=expression)

    def firing(self) -> list[dict]:
        return [
            alert for alert in self.api("alerts")["data"]["alerts"] if alert["state"] == "firing"
        ]

    def stop(self) -> None:
        self.process.stop()
        self.directory.remove()


def dashboard_expressions(dashboard: Path) -> list[str]:
    """Every PromQL expression of a Grafana dashboard's panels (rows' panels included)."""
    panels = json.loads(dashboard.read_text())["panels"]
    expressions = []
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        expressions += [target["expr"] for target in panel.get("targets", []) if "expr" in target]
    return expressions
