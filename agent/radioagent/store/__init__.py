"""The cluster store: the only module that speaks etcd.

It owns the key layout (`keys`), every record's encoding and decoding (`records`, pure),
the one client factory and endpoint fail-over policy (`client`), and every operation the
agent and radioctl perform (`cluster`, blocking; `agent_store`, the agent's async facade).
Like Patroni's `dcs` package, used by both the HA loop and the command-line tool. Import the
modules themselves: the pure ones (`keys`, `records`) load without etcd3.
"""
