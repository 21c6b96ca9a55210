#!/usr/bin/env bash
# One-command setup for development and CI on Debian bookworm, as root.
# Installs the Debian packages nodes and tests use, a virtualenv with the pinned dev tools
# and the Ansible collections, then checks the result. A second run changes nothing.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${repo_dir}/.venv"

# What nodes run (services and the agent's Python dependencies), plus test, bench and
# packaging tools.
debian_packages=(
  etcd-server etcd-client icecast2 liquidsoap
  python3-etcd3 python3-aiohttp python3-jinja2 python3-prometheus-client python3-yaml
  python3-dnslib python3-acme python3-systemd python3-venv
  ffmpeg wrk nginx-light iproute2 procps make git
  debootstrap systemd-container iputils-ping openssl
  prometheus chromium chromium-driver python3-selenium
  bind9-dnsutils python3-dnspython dnsperf libnss3-tools python3-uvloop pebble faketime
  # make deb: the agent's Debian package, and its check
  debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools lintian fakeroot
)

if [[ ${EUID} -ne 0 ]]; then
  echo "setup: run as root (it installs Debian packages and tests run services as their users)" >&2
  exit 2
fi

missing_packages=()
for package in "${debian_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q '^install ok installed$'; then
    missing_packages+=("${package}")
  fi
done
if ((${#missing_packages[@]})); then
  echo "setup: installing Debian packages: ${missing_packages[*]}"
  # Package scripts must not start etcd, icecast2 or nginx on the build machine: the tests
  # run their own. A policy-rc.d answering 101 forbids it, for this install only.
  policy_file=/usr/sbin/policy-rc.d
  if [[ ! -e ${policy_file} ]]; then
    printf '#!/bin/sh\n# radio cluster setup: no service starts during install\nexit 101\n' >"${policy_file}"
    chmod 755 "${policy_file}"
    trap 'rm -f "${policy_file}"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_packages[@]}"
fi

if [[ ! -x "${venv_dir}/bin/python" ]]; then
  echo "setup: creating ${venv_dir}"
  # System site packages: the agent uses Debian's etcd3/aiohttp/jinja2/prometheus-client,
  # exactly what a node has; PyPI's etcd3 does not even import with current protobuf.
  /usr/bin/python3 -m venv --system-site-packages "${venv_dir}"
fi

# Reinstall only when the pins or the agent's project file changed.
stamp_file="${venv_dir}/.setup-stamp"
wanted_stamp="$(cat "${repo_dir}/requirements-dev.txt" "${repo_dir}/agent/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "${stamp_file}" 2>/dev/null || true)" != "${wanted_stamp}" ]]; then
  echo "setup: installing pinned dev tools and the agent into ${venv_dir}"
  "${venv_dir}/bin/pip" install --quiet --disable-pip-version-check -r "${repo_dir}/requirements-dev.txt"
  # --no-deps: the agent's dependencies must come from Debian, as on a node.
  "${venv_dir}/bin/pip" install --quiet --disable-pip-version-check --no-deps --editable "${repo_dir}/agent"
  echo "${wanted_stamp}" >"${stamp_file}"
fi

"${venv_dir}/bin/python" "${repo_dir}/scripts/check_environment.py"
