"""The HTML status page: nodes, leader, mounts and listeners, readable on a phone.

Rendered on the server for the first paint (and for clients without JavaScript), then
refreshed in place from /api/v1/status every few seconds. Pure: document in, HTML out.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Radio cluster status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 0.8em; max-width: 60em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.2em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.35em 0.5em; border-bottom: 1px solid #ddd; }
td.n, th.n { text-align: right; }
.bad { color: #b00020; font-weight: bold; } .good { color: #1b5e20; }
.wrap { overflow-x: auto; }
</style>
</head>
<body>
<h1>Radio cluster</h1>
<p id="leader">Leader:
{%- if leader %} <strong>{{ leader.name }}</strong> (epoch {{ leader.epoch }})
{%- else %} <span class="bad">none</span>{% endif %}.
Page from {{ node }}.</p>
<h2>Mounts</h2>
<div class="wrap"><table id="mounts">
<thead><tr><th>Mount</th><th>Format</th><th class="n">Listeners</th></tr></thead>
<tbody>
{%- for name, mount in mounts.items() %}
<tr><td><a href="/{{ name }}">{{ name }}</a></td>
<td>{{ mount.format.codec }} {{ mount.format.bitrate_kbps }} kbps</td>
<td class="n">{{ mount.listeners }}</td></tr>
{%- else %}
<tr><td colspan="3">No mounts yet.</td></tr>
{%- endfor %}
</tbody></table></div>
<h2>Nodes</h2>
<div class="wrap"><table id="nodes">
<thead><tr><th>Node</th><th>Role</th><th>Icecast</th><th class="n">Listeners</th></tr></thead>
<tbody>
{%- for name, status in nodes.items() %}
<tr><td>{{ name }}{% if status.draining %} (draining){% endif %}</td>
<td>{{ status.role }}</td>
{%- set up = status.icecast_up %}
<td class="{{ 'good' if up else 'bad' }}">{{ 'up' if up else 'down' }}</td>
<td class="n">{{ status.listeners.values() | sum }}</td></tr>
{%- endfor %}
</tbody></table></div>
<script>
"use strict";
function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}
function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
}
async function refresh() {
  let doc;
  try {
    const response = await fetch("/api/v1/status", {cache: "no-store"});
    if (!response.ok) return;
    doc = await response.json();
  } catch (error) { return; }
  const leader = document.getElementById("leader");
  leader.textContent = doc.leader
    ? "Leader: " + doc.leader.name + " (epoch " + doc.leader.epoch + ")."
    : "Leader: none.";
  leader.textContent += " Page from " + doc.node + ".";
  fill("mounts", Object.entries(doc.mounts).map(([name, mount]) => {
    const row = document.createElement("tr");
    const link = document.createElement("a");
    link.href = "/" + encodeURIComponent(name);
    link.textContent = name;
    cell(row, "").appendChild(link);
    cell(row, mount.format.codec + " " + mount.format.bitrate_kbps + " kbps");
    cell(row, String(mount.listeners), "n");
    return row;
  }));
  fill("nodes", Object.entries(doc.nodes).map(([name, node]) => {
    const row = document.createElement("tr");
    cell(row, name + (node.draining ? " (draining)" : ""));
    cell(row, node.role);
    cell(row, node.icecast_up ? "up" : "down", node.icecast_up ? "good" : "bad");
    cell(row, String(Object.values(node.listeners).reduce((a, b) => a + b, 0)), "n");
    return row;
  }));
}
setInterval(refresh, 5000);
</script>
</body>
</html>
"""

_TEMPLATE = Environment(autoescape=True).from_string(_PAGE)


def render_status_page(document: dict[str, Any]) -> str:
    """`document` is the /api/v1/status document (with "node")."""
    return _TEMPLATE.render(**document)
