"""Where a redirect's time goes in our own code: the pure path of one listener's request
(head parser, routing with the real director and policy, response), in this process, no
sockets, timed and then profiled with cProfile. bench/redirect gives the whole request's
time over the wire; the difference is the event loop and its system calls.

The last stdout line is one JSON object: pure_path_us (per request, unprofiled), and each
part's share of the profiled time; bench/results/redirect_profile.json gets the same.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from benchlib import report

from radioagent.frontdoor.http import head_end, parse_request_head, response
from radioagent.frontdoor.route import Redirect, route
from radioagent.frontdoor.server import CORS_HEADERS
from tests.unit.test_front_door_route import ON_8000, Door, node

REQUEST = b"GET /live.mp3 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\n\r\n"
# Where each part's cumulative time is, in cProfile's (file, line, function) keys.
PARTS = {"parser": "parse_request_head", "routing": "route", "director": "direct"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50000)
    args = parser.parse_args()
    door = Door(
        node("here", draining=True),
        node("other", address="192.0.2.20"),
        draining=frozenset({"here"}),
    )

    def one() -> bytes:
        buffer = bytearray(REQUEST)
        head = parse_request_head(bytes(buffer[: head_end(buffer)]))
        decision = route(head, door.view, ON_8000, door.routing)
        if not isinstance(decision, Redirect):
            raise RuntimeError(f"not a redirect: {decision}")
        headers = (("Location", decision.location), *CORS_HEADERS)
        return response(302, b"", headers=headers, keep_alive=decision.keep_alive)

    started = time.perf_counter()
    for _ in range(args.requests):
        one()
    pure_us = (time.perf_counter() - started) / args.requests * 1e6
    profile = cProfile.Profile()
    profile.runcall(lambda: [one() for _ in range(args.requests // 2)])
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(tottime for _, _, tottime, _, _ in stats.values())
    shares = {}
    for part, function in PARTS.items():
        cumulative = sum(
            entry[3]
            for (path, _, name), entry in stats.items()
            if name == function and "radioagent" in path
        )
        shares[f"{part}_share"] = round(cumulative / total, 3)
    report(
        "redirect_profile", {"requests": args.requests, "pure_path_us": round(pure_us, 1), **shares}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
