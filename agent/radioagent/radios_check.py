"""`python3 -m radioagent.radios_check FILE...`: validate a site's radio files together,
without etcd, with the same rules `radioctl apply` uses. The playbooks' preflight runs it
on the controller, so a bad file stops a run before any node changes."""

from __future__ import annotations

import sys

from radioagent.model import MountSpec
from radioagent.radios import parse_radio_file, plan_apply
from radioagent.validation import ValidationError
from radioagent.yamlfile import load_yaml_text

EXIT_OK = 0
EXIT_INVALID = 2
# Stands in for the passwords apply would generate; never stored anywhere.
CHECK_PASSWORD = "preflight-check"  # noqa: S105


def radio_files_problems(paths: list[str]) -> tuple[list[str], int]:
    """Every problem, each prefixed with its file; and how many mounts the files hold.
    A mount name may appear in one radio only: later files see the earlier ones."""
    problems: list[str] = []
    seen: dict[str, MountSpec] = {}
    for path in paths:
        try:
            radio_file = parse_radio_file(load_yaml_text(path))
            changes = plan_apply(radio_file, seen, prune=False, new_password=lambda: CHECK_PASSWORD)
        except ValidationError as error:
            problems += [
                problem if problem.startswith(path) else f"{path}: {problem}"
                for problem in error.problems
            ]
            continue
        seen.update({change.name: change.after for change in changes if change.after})
    return problems, len(seen)


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python3 -m radioagent.radios_check FILE...", file=sys.stderr)
        return EXIT_INVALID
    problems, mounts = radio_files_problems(paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_INVALID
    print(f"{len(paths)} radio files, {mounts} mounts: valid")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
