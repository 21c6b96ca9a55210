"""HTTP-01 challenges for the cluster's certificate: put in etcd by the ordering node,
answered by every node's front door to whoever asks (the CA may reach any of them)."""

from __future__ import annotations

import functools

import pytest

from radioagent.validation import ValidationError
from tests.harness.agents import RadioCluster
from tests.harness.clients import listen
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = f"{TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def challenge_status(url: str) -> int:
    return listen(url, 4096).status


def answers(url: str, status: int) -> bool:
    return challenge_status(url) == status


def test_every_node_answers_a_challenge_until_it_is_deleted(radio_cluster: RadioCluster) -> None:
    store = radio_cluster.store()
    with pytest.raises(ValidationError):  # refused before anything is written
        store.put_acme_challenge(TOKEN, f"{TOKEN}.not-a-thumbprint", 60)
    store.put_acme_challenge(TOKEN, KEY_AUTHORIZATION, 60)
    path = f"/.well-known/acme-challenge/{TOKEN}"
    for node in radio_cluster.nodes:
        url = f"{node.front_door_url}{path}"
        wait_for(
            functools.partial(answers, url, 200),
            timeout=5,
            what=f"the challenge on {node.name}",
        )
        assert listen(url, 4096).body == KEY_AUTHORIZATION.encode()
        assert challenge_status(f"{url}x") == 404
    assert store.delete_acme_challenge(TOKEN)
    for node in radio_cluster.nodes:
        wait_for(
            functools.partial(
                lambda url: challenge_status(url) == 404, f"{node.front_door_url}{path}"
            ),
            timeout=5,
            what=f"the challenge gone from {node.name}",
        )
