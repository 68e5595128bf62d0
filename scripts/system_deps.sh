#!/usr/bin/env bash
# System packages some tests use: a single-node SLURM (slurm-wlm, munge) for tests/sweeps/test_slurm.py and
# Chromium for the UI screenshot test. Installed with apt when missing and we are root (CI, these machines);
# otherwise one note, and those tests skip with their reason.
set -uo pipefail
missing=()
command -v slurmctld >/dev/null || missing+=(slurm-wlm munge)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || echo "note: could not install ${missing[*]}; the tests that need them will skip" >&2
else
    echo "note: ${missing[*]} not installed (needs root and apt); the tests that need them will skip" >&2
fi
exit 0
