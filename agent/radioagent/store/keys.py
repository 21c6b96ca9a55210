"""The key layout under the cluster's prefix (versioned, so two clusters or two layout
versions can share one etcd)."""

from __future__ import annotations

from dataclasses import dataclass

LAYOUT_VERSION = "v1"


@dataclass(frozen=True)
class KeyLayout:
    prefix: str  # e.g. "/radio", from the agent config

    @property
    def root(self) -> str:
        return f"{self.prefix}/{LAYOUT_VERSION}/"

    @property
    def leader(self) -> str:
        return f"{self.root}leader"

    @property
    def config(self) -> str:
        return f"{self.root}config"

    @property
    def nodes(self) -> str:
        return f"{self.root}nodes/"

    @property
    def mounts(self) -> str:
        return f"{self.root}mounts/"

    @property
    def transcoders(self) -> str:
        return f"{self.root}transcoders/"

    @property
    def preferences(self) -> str:
        """`preferred/<programme>`: the input an operator prefers (absent: automatic)."""
        return f"{self.root}preferred/"

    @property
    def titles(self) -> str:
        return f"{self.root}titles/"

    @property
    def acme(self) -> str:
        return f"{self.root}acme/"

    @property
    def acme_challenges(self) -> str:
        return f"{self.acme}http-01/"

    @property
    def acme_txt_challenges(self) -> str:
        return f"{self.acme}dns-01/"

    @property
    def acme_account(self) -> str:
        return f"{self.acme}account"

    @property
    def acme_claim(self) -> str:
        return f"{self.acme}ordering"

    @property
    def acme_failure(self) -> str:
        return f"{self.acme}failure"

    @property
    def acme_renewal_request(self) -> str:
        return f"{self.acme}renew"

    @property
    def certificate(self) -> str:
        return f"{self.root}tls/certificate"

    @property
    def drains(self) -> str:
        return f"{self.root}drain/"

    @property
    def known_nodes(self) -> str:
        """`known/<node>`: every node that ever ran an agent here, until `radioctl node
        forget` (remove-node.yml): a node whose status expired is listed as down."""
        return f"{self.root}known/"

    def known_node(self, name: str) -> str:
        return f"{self.known_nodes}{name}"

    @property
    def handover(self) -> str:
        return f"{self.root}handover"

    def transcoder(self, mount: str) -> str:
        return f"{self.transcoders}{mount}"

    def preference(self, programme: str) -> str:
        return f"{self.preferences}{programme}"

    def title(self, mount: str) -> str:
        return f"{self.titles}{mount}"

    def acme_challenge(self, token: str) -> str:
        return f"{self.acme_challenges}{token}"

    def acme_txt_challenge(self, token: str) -> str:
        return f"{self.acme_txt_challenges}{token}"

    def drain(self, name: str) -> str:
        return f"{self.drains}{name}"

    def node(self, name: str) -> str:
        return f"{self.nodes}{name}"

    def mount(self, name: str) -> str:
        return f"{self.mounts}{name}"

    def wakes_the_loop(self, key: str) -> bool:
        """Changes the loop must act on at once. Node presence is not one: every agent
        rewrites its own, and waking on those would make agents wake each other forever."""
        return key in (self.leader, self.config, self.handover, self.certificate) or key.startswith(
            (
                self.mounts,
                self.transcoders,
                self.drains,
                self.titles,
                self.acme,
                self.preferences,
            )
        )
