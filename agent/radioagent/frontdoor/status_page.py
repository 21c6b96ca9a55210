"""The HTML status page: nodes, leader, mounts (now playing, on air or dead air, a play
button, listeners and their last hour as a small chart), readable on a phone.

Rendered on the server for the first paint (and for clients without JavaScript), then
refreshed in place from /api/v1/status every few seconds. Pure: document in, HTML out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

_PAGE = """
{%- macro chart(values) -%}
{%- set line = chart_line(values) -%}
<svg class="chart" viewBox="0 0 {{ line.width }} 20" width="60" height="20"
 preserveAspectRatio="none" role="img"
 aria-label="listeners in the last hour, at most {{ line.most }}">
{#- #}<polyline points="{{ line.points }}" vector-effect="non-scaling-stroke"/></svg>
{%- endmacro -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Radio cluster status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 0.8em; max-width: 60em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.2em; }
p, .name { overflow-wrap: anywhere; word-break: break-word; }
.title { font-size: 0.9em; color: #444; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.35em 0.5em; border-bottom: 1px solid #ddd; }
td.n, th.n { text-align: right; }
.bad { color: #b00020; font-weight: bold; } .good { color: #1b5e20; }
.wrap { overflow-x: auto; }
button.play { font-size: 1em; min-width: 2.2em; margin-right: 0.3em; cursor: pointer; }
svg.chart { display: block; margin-left: auto; stroke: #1b5e20; fill: none; }
@media (max-width: 30em) { body { padding: 0.5em; } th, td { padding: 0.3em 0.25em; } }
</style>
</head>
<body>
<h1>Radio cluster</h1>
<p id="leader">Leader:
{%- if leader %} <strong id="leader-name">{{ leader.name }}</strong>
{#- #}<span id="leader-epoch"> (epoch {{ leader.epoch }})</span>
{%- else %} <strong id="leader-name" class="bad">none</strong><span id="leader-epoch"></span>
{%- endif %}. Page from <span id="page-node">{{ node }}</span>.</p>
<h2>Mounts</h2>
<div class="wrap"><table id="mounts">
<thead><tr><th>Mount, now playing</th><th>On air</th><th>Format</th><th class="n">Listeners</th>
</tr></thead>
<tbody>
{%- for name, mount in mounts.items() %}
<tr data-mount="{{ name }}"><td class="name"><button type="button" class="play"
 data-play="{{ name }}" aria-label="Play {{ name }}">&#9654;</button>
{#- #}<a href="/{{ name }}">{{ name }}</a>
{%- if mount.hls %} <a class="hls" href="{{ mount.hls }}">HLS</a>{% endif %}
<div class="title">{{ mount.now_playing.title if mount.now_playing else "" }}</div></td>
{%- if mount.on_air %}
<td class="onair good" title="live on {{ mount.live_on | join(', ') }}">on air
{%- else %}
<td class="onair bad">dead air
{%- endif %}
{%- if mount.programme_state %}<div class="input">{{ programme_input(mount.programme_state) }}</div>
{%- endif %}</td>
<td>{{ mount.format.codec }} {{ mount.format.bitrate_kbps }} kbps</td>
<td class="n">{{ mount.listeners }}{{ chart(mount.listeners_last_hour or []) }}</td></tr>
{%- else %}
<tr><td colspan="4">No mounts yet.</td></tr>
{%- endfor %}
</tbody></table></div>
<audio id="player" preload="none"></audio>
<h2>Nodes</h2>
<div class="wrap"><table id="nodes">
<thead><tr><th>Node</th><th>Role</th><th>Icecast</th><th class="n">Listeners</th></tr></thead>
<tbody>
{%- for name, status in nodes.items() %}
<tr data-node="{{ name }}"><td class="name">{{ name }}
{%- if status.draining %} (draining){% endif %}</td>
<td class="role">{{ status.role }}</td>
{%- set up = status.icecast_up %}
<td class="{{ 'good' if up else 'bad' }}">{{ 'up' if up else 'down' }}</td>
<td class="n">{{ status.listeners.values() | sum }}</td></tr>
{%- endfor %}
{%- for name, down in (down_nodes or {}).items() %}
<tr data-node="{{ name }}"><td class="name">{{ name }}</td>
<td class="role bad">down{% if down.down_since %} since {{ down.down_since | utc }}{% endif %}</td>
<td class="bad">-</td><td class="n">0</td></tr>
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
function row(key, value) {
  const tr = document.createElement("tr");
  tr.dataset[key] = value;
  return tr;
}
// As programme_input() says it on the server.
function programmeInput(programme) {
  if (programme.real_output) return "from " + programme.real_output;
  return programme.is_output_blank ? "blank: no input" : "not running";
}
const SVG = "http://www.w3.org/2000/svg";
// Listeners over the last hour (a value a minute, null where unseen), as chart() draws it
// on the server for the first paint.
function chart(values) {
  const svg = document.createElementNS(SVG, "svg");
  const known = values.filter((value) => value !== null);
  const most = Math.max(0, ...known);
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 " + Math.max(1, values.length - 1) + " 20");
  svg.setAttribute("width", "60");
  svg.setAttribute("height", "20");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "listeners in the last hour, at most " + most);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", values.map((value, x) => value === null ? null :
    x + "," + (most ? 19 - value / most * 18 : 19).toFixed(1)).filter(Boolean).join(" "));
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.appendChild(line);
  return svg;
}
const player = document.getElementById("player");
function showState(button) {
  const name = button.dataset.play;
  const playing = player.dataset.mount === name && !player.paused;
  button.textContent = playing ? "\u25a0" : "\u25b6";
  button.setAttribute("aria-label", (playing ? "Stop " : "Play ") + name);
}
function playButton(name) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "play";
  button.dataset.play = name;
  showState(button);
  return button;
}
function showStates() {
  document.querySelectorAll("#mounts button.play").forEach(showState);
}
// The buttons follow the player, whatever stops it (the stream ending, an error).
for (const event of ["playing", "pause", "ended", "error", "emptied"]) {
  player.addEventListener(event, showStates);
}
// One player for the page: it lives outside the table, which each refresh rebuilds. The
// mount's URL is relative, so it plays over the scheme the page came with.
document.getElementById("mounts").addEventListener("click", (event) => {
  const button = event.target.closest("button.play");
  if (!button) return;
  const name = button.dataset.play;
  if (player.dataset.mount === name && !player.paused) {
    player.pause();
    player.removeAttribute("src");
    player.load();
  } else {
    player.dataset.mount = name;
    player.src = "/" + encodeURIComponent(name);
    player.play().catch((error) => {
      // Refused (a format the browser cannot play, say): the button says why.
      button.title = error.message;
      player.dataset.mount = "";
      showStates();
    });
  }
  showStates();
});
function utc(unixTime) {
  return new Date(unixTime * 1000).toISOString().slice(11, 19) + " UTC";
}
function fill(id, rows, empty) {
  const body = document.querySelector("#" + id + " tbody");
  if (!rows.length && empty) {
    const tr = document.createElement("tr");
    cell(tr, empty).colSpan = document.querySelectorAll("#" + id + " th").length;
    rows = [tr];
  }
  body.replaceChildren(...rows);
}
async function refresh() {
  let doc;
  try {
    const response = await fetch("/api/v1/status", {cache: "no-store"});
    if (!response.ok) return;
    doc = await response.json();
  } catch (error) { return; }
  const leader = document.getElementById("leader-name");
  leader.textContent = doc.leader ? doc.leader.name : "none";
  leader.className = doc.leader ? "" : "bad";
  document.getElementById("leader-epoch").textContent =
    doc.leader ? " (epoch " + doc.leader.epoch + ")" : "";
  document.getElementById("page-node").textContent = doc.node;
  fill("mounts", Object.entries(doc.mounts).map(([name, mount]) => {
    const tr = row("mount", name);
    const link = document.createElement("a");
    link.href = "/" + encodeURIComponent(name);
    link.textContent = name;
    const nameCell = cell(tr, "", "name");
    nameCell.appendChild(playButton(name));
    nameCell.appendChild(link);
    if (mount.hls) {
      const hls = document.createElement("a");
      hls.className = "hls";
      hls.href = mount.hls;
      hls.textContent = "HLS";
      nameCell.append(" ", hls);
    }
    // Under the name (a column of its own would not fit a phone); textContent: a title
    // is text, whatever markup it holds.
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = mount.now_playing ? mount.now_playing.title : "";
    nameCell.appendChild(title);
    const onAir = cell(tr, mount.on_air ? "on air" : "dead air",
      "onair " + (mount.on_air ? "good" : "bad"));
    if (mount.on_air) onAir.title = "live on " + mount.live_on.join(", ");
    if (mount.programme_state) {
      // A programme: which of its inputs is on air (what its Liquidsoap says).
      const input = document.createElement("div");
      input.className = "input";
      input.textContent = programmeInput(mount.programme_state);
      onAir.appendChild(input);
    }
    cell(tr, mount.format.codec + " " + mount.format.bitrate_kbps + " kbps");
    cell(tr, String(mount.listeners), "n").appendChild(chart(mount.listeners_last_hour || []));
    return tr;
  }), "No mounts yet.");
  fill("nodes", Object.entries(doc.nodes).map(([name, node]) => {
    const tr = row("node", name);
    cell(tr, name + (node.draining ? " (draining)" : ""), "name");
    cell(tr, node.role, "role");
    cell(tr, node.icecast_up ? "up" : "down", node.icecast_up ? "good" : "bad");
    cell(tr, String(Object.values(node.listeners).reduce((a, b) => a + b, 0)), "n");
    return tr;
  }).concat(Object.entries(doc.down_nodes || {}).map(([name, down]) => {
    const tr = row("node", name);
    cell(tr, name, "name");
    cell(tr, "down" + (down.down_since ? " since " + utc(down.down_since) : ""), "role bad");
    cell(tr, "-", "bad");
    cell(tr, "0", "n");
    return tr;
  })));
}
setInterval(refresh, 5000);
</script>
</body>
</html>
"""


@dataclass(frozen=True)
class ChartLine:
    width: int  # the viewBox's: one unit a minute
    most: int
    points: str  # the polyline's


def chart_line(values: list[int | None]) -> ChartLine:
    """The listeners-over-the-last-hour chart's line (the page's script draws the same
    from each refresh)."""
    most = max([0, *(value for value in values if value is not None)])
    points = " ".join(
        f"{x},{(19 - value / most * 18) if most else 19:.1f}"
        for x, value in enumerate(values)
        if value is not None
    )
    return ChartLine(max(1, len(values) - 1), most, points)


def programme_input(report: dict[str, Any]) -> str:
    """A programme's input on air, in a few words (the page's script says the same)."""
    if report.get("real_output"):
        return f"from {report['real_output']}"
    return "blank: no input" if report.get("is_output_blank") else "not running"


def utc_time(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, UTC).strftime("%H:%M:%S UTC")


_ENVIRONMENT = Environment(autoescape=True)
_ENVIRONMENT.filters["utc"] = utc_time
_ENVIRONMENT.globals["chart_line"] = chart_line
_ENVIRONMENT.globals["programme_input"] = programme_input
_TEMPLATE = _ENVIRONMENT.from_string(_PAGE)


def render_status_page(document: dict[str, Any]) -> str:
    """`document` is the /api/v1/status document (with "node")."""
    return _TEMPLATE.render(**document)
