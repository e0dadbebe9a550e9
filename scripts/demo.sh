#!/usr/bin/env bash
# The README's first command: `bash scripts/demo.sh [nbkube demo options]`.
# On a fresh Debian/Ubuntu: checks for Python >= 3.11 with venv (installs python3-venv,
# busybox-static and etcd-server with apt-get when run as root; otherwise says what to install),
# creates .venv in the repository, installs nbkube into it (pip install -e .), then runs
# `.venv/bin/nbkube demo "$@"`: the article's scenario end to end, with a report folder.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
APT_PACKAGES="python3-venv busybox-static etcd-server"

say() { printf 'demo.sh: %s\n' "$*" >&2; }

need_install() {
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        say "installing $APT_PACKAGES with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PACKAGES
    else
        say "$1"
        say "please install: sudo apt-get install $APT_PACKAGES   (then run this script again)"
        exit 1
    fi
}

if ! command -v "$PY" >/dev/null; then
    need_install "no $PY found"
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    say "nbkube needs Python >= 3.11; $PY is $("$PY" -V 2>&1)"
    say "use a newer Python, e.g. PYTHON=python3.12 bash scripts/demo.sh"
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    # `python3 -m venv` exists on Debian only with python3-venv (ensurepip)
    if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
        need_install "$PY cannot create virtual environments (python3-venv is missing)"
    fi
    if ! command -v busybox >/dev/null && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        need_install "busybox missing"
    fi
    say "creating .venv"
    "$PY" -m venv .venv
fi
command -v busybox >/dev/null || say "note: no busybox binary: the demo will use simulated pods (apt-get install busybox-static)"
command -v etcd >/dev/null || say "note: no etcd binary: the demo will use the SQLite store (apt-get install etcd-server)"

say "installing nbkube into .venv (pip install -e .)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
exec .venv/bin/nbkube demo "$@"
