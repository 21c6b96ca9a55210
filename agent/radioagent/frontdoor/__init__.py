"""The agent's public HTTP side on ports 80 and 8000: listeners (redirects, the
passthrough fan-out, playlists), sources piped to the leader, and the status, health and
metrics pages. `server` wires the parts; agent/README.md says which does what."""
