#!/usr/bin/env bash
# The size and time of an install from scratch: a fresh venv, pip upgraded, then
# `pip install --no-cache-dir -e "TREE[EXTRAS]"` (every wheel downloaded, none from pip's cache).
# Prints one line: the seconds of each step, site-packages in MB and the number of
# distributions. The venv is left in VENV (default: a new directory under /tmp).
#   bash scripts/bench/install_size.sh TREE EXTRAS [VENV]
#   bash scripts/bench/install_size.sh . cpu
set -euo pipefail
tree=$(cd "$1" && pwd) extras=$2 venv=${3:-$(mktemp -d /tmp/install-size.XXXXXX)}
rm -rf "$venv"
t0=$(date +%s.%N)
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q --no-cache-dir --upgrade pip
t1=$(date +%s.%N)
"$venv/bin/python" -m pip install -q --no-cache-dir -e "$tree[$extras]"
t2=$(date +%s.%N)
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
dists=$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | wc -l)
printf 'extras=%s venv+pip=%.0fs install=%.0fs site-packages=%sMB distributions=%s load=%s venv=%s\n' \
    "$extras" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" \
    "$(du -sm "$site" | cut -f1)" "$dists" "$(cut -d' ' -f1 /proc/loadavg)" "$venv"
