#!/usr/bin/env bash
# Creates or reuses the project's venv and installs the Debian packages the
# tests and the demo use. Idempotent; safe to run on every `make` call.
#
# The venv lives outside the clone, under ~/.cache/carhub/, keyed by a hash of
# its inputs (Python version, lock file, both pyproject files), so a later run
# on the same machine reuses it and a changed input builds a fresh one. The
# key covers what is installed from PyPI (the lock file) and the interpreter;
# the project itself is installed editable on every run, so editing
# pyproject.toml tool settings does not rebuild the venv.
# `.venv` in the repository root is a symlink to it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
# espeak-ng + sox: voice tests synthesize and mix speech; gpsd-clients:
# gpsfake for GPS tests; can-utils: candump/cansend used in docs.
DEB_PACKAGES=(espeak-ng sox gpsd gpsd-clients can-utils nginx-light)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
    log "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
fi

# --- Python 3.13 -----------------------------------------------------------
find_python() {
    local c
    for c in "${CARHUB_PYTHON:-}" python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13; do
        [ -n "$c" ] || continue
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}
PY=$(find_python) || { log "Python 3.13 not found (PATH or ~/.pyenv/versions/3.13*); set CARHUB_PYTHON"; exit 1; }
PYVER=$("$PY" -c 'import sys; print(sys.version.split()[0])')

# --- venv keyed by its inputs ----------------------------------------------
KEY=$( { echo "$PYVER"; cat requirements/lock.txt; } | sha256sum | cut -c1-16)
CACHE=${CARHUB_CACHE:-$HOME/.cache/carhub}
VENV=$CACHE/venv-$KEY
if [ ! -f "$VENV/.complete" ]; then
    log "building venv $VENV from $PY ($PYVER); first time takes several minutes"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip setuptools wheel >&2
    "$VENV/bin/pip" install -q -r requirements/lock.txt >&2
    touch "$VENV/.complete"
else
    log "reusing venv $VENV"
fi
# The project itself is installed editable from this clone every time (cheap),
# so the cached venv always points at the checkout that is running.
if ! "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e ./bridge -e . >"$CACHE/editable.log" 2>&1; then
    cat "$CACHE/editable.log" >&2
    log "installing the project into the venv failed"
    exit 1
fi
ln -sfn "$VENV" "$ROOT/.venv"
log "venv ready: .venv -> $VENV"
