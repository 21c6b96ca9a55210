"""The agent's public HTTP side. Today: health, readiness, leadership, status and
metrics; listener redirects, passthrough and source proxying come next."""
