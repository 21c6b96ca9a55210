"""The cluster's zone, answered by the agents: who is up and in what order (zone.py, pure),
DNS messages in and out (wire.py, on dnslib), and the UDP and TCP listeners (server.py)."""
