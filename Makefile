# Entry points. Run as root on Debian bookworm: `make demo`, `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup lint test unit molecule demo demo-down deb collection

help:
	@echo "make demo       bring up a local demo cluster and play a stream from it"
	@echo "make test       set up, then lint and run every test (what CI runs)"
	@echo "make setup      install Debian packages, the dev virtualenv and collections"
	@echo "make lint       ruff, mypy, the hermetic unit tier, yamllint, ansible-lint (production)"
	@echo "make unit       unit tests only (no services, no etcd3 or grpc importable)"
	@echo "make molecule   the Molecule scenarios on systemd-nspawn machines"
	@echo "make deb        the agent's Debian package, in build/ (the radio_agent role installs it)"
	@echo "make collection the Ansible collection radio.cluster, in build/, the package inside"

setup:
	bash scripts/setup.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd agent && ../$(BIN)/mypy radioagent tests ../bench ../scripts ../plugins/filter
	cd agent && ../$(BIN)/mypy --no-site-packages ../molecule/testbed
	$(MAKE) unit
	$(BIN)/yamllint --strict .
	# The default scenario imports the collection's playbooks (radio.cluster.site): lint
	# finds the collection as this checkout, through a link under .cache (which it skips).
	mkdir -p .cache/collections/lint/ansible_collections/radio
	ln -sfn ../../../../.. .cache/collections/lint/ansible_collections/radio/cluster
	PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/.cache/collections/lint" $(BIN)/ansible-lint

# --durations: CI's log says where the time goes (the whole run should stay near 45 min).
# Two workers, a module at a time each (--dist loadfile keeps its tests and its shared
# fixtures together): the tests wait on services far more than they compute, and every
# service they start takes free ports and its own directories.
test: lint
	cd agent && ../$(BIN)/pytest -n 2 --dist loadfile --durations=30 $(PYTEST_ARGS)
	$(MAKE) molecule

# Real systemd machines on this host (systemd-nspawn, see molecule/testbed/): each scenario
# creates, converges, checks idempotence, verifies on the wire and destroys.
molecule: setup deb
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/molecule-test default
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/molecule-test cluster
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/molecule-test add-node
	# Debian 13 nodes (Liquidsoap 2.3, etcd 3.5, Python 3.13): the same scenario on a trixie image.
	RADIO_TESTBED_SUITE=trixie PATH="$(CURDIR)/$(BIN):$$PATH" scripts/molecule-test default

# tests/hermetic shadows etcd3 and grpc with packages that refuse to import: the unit tier
# proves on every run that it needs neither.
unit: setup
	cd agent && PYTHONPATH=tests/hermetic ../$(BIN)/pytest tests/unit -p no:cacheprovider $(PYTEST_ARGS)

demo: setup deb
	/usr/bin/python3 molecule/testbed/demo.py up

# Built again only when what it packages changed (the version names the tree).
deb: setup
	scripts/build-deb >/dev/null

collection: setup
	scripts/build-collection >/dev/null

demo-down:
	/usr/bin/python3 molecule/testbed/demo.py down
