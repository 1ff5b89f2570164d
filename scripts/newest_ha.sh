#!/usr/bin/env bash
# The newest Home Assistant the integration is tested on, in its own root.
#
# Home Assistant 2026.10 needs Python 3.14, which this machine's Debian
# (bookworm) does not have; Debian's unstable suite does. This script builds a
# minimal unstable root with debootstrap and a venv inside it holding
# pytest-homeassistant-custom-component (which pins Home Assistant), the
# requirements of the Home Assistant integrations the tests and the demo load
# (read from their manifest.json files), and the bridge's own dependencies at
# the versions Home Assistant pins. Everything lives under
# ~/.cache/carhub/ha-newest-<key>/, keyed by this script and
# requirements/newest-ha.txt, so a later run reuses it.
#
# Usage:
#   scripts/newest_ha.sh build          build (or reuse) the root; prints its path
#   scripts/newest_ha.sh run CMD...     run CMD inside the root, in this clone,
#                                       with PATH starting at the root's venv
#   scripts/newest_ha.sh version        the Home Assistant version inside
#
# `run` bind-mounts this clone (at the same path), /tmp, /dev and /proc into
# the root in a private mount namespace, so paths are the same inside and out
# and nothing stays mounted when CMD ends. It needs root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
CLONE=$(pwd)

log() { printf '[newest-ha] %s\n' "$*" >&2; }

SUITE=sid
MIRROR=${CARHUB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3.14-dev + gcc + g++: a few integration requirements have no cp314 wheel.
# git: the suite's meta tests list tracked files.
INCLUDE=python3.14,python3.14-venv,python3.14-dev,gcc,g++,libc6-dev,ca-certificates,git
KEY=$( { echo "$SUITE $INCLUDE"; cat "$0" requirements/newest-ha.txt bridge/pyproject.toml; } \
    | sha256sum | cut -c1-16)
CACHE=${CARHUB_CACHE:-$HOME/.cache/carhub}
DIR=$CACHE/ha-newest-$KEY
ROOT=$DIR/root
VENV=/opt/venv  # inside the root

# Integrations whose requirements the venv gets: what the integration
# suite sets up, what the demo's `hass` loads (demo/ha_config.py), and
# their dependencies.
INTEGRATIONS="conversation network recorder zone climate light cover lock switch
    http api auth onboarding config frontend zeroconf logger input_boolean template
    generic_thermostat sensor binary_sensor device_tracker event repairs diagnostics
    device_automation"

need_root() {
    if [ "$(id -u)" != 0 ]; then
        log "building and entering the Home Assistant root needs root (chroot, mounts)"
        exit 1
    fi
}

# in_root CMD...: run CMD inside the root with a clean environment (the host's
# pip settings point at folders that do not exist there). With EXEC=exec the
# shell is replaced: unshare, sh, chroot, env and sh each exec the next.
in_root() {
    ${EXEC:-} unshare -m sh -c '
        R=$1; C=$2; shift 2
        mount --make-rprivate / 2>/dev/null || true
        mount -t proc proc "$R/proc"
        mount --rbind /dev "$R/dev"
        mkdir -p "$R$C"
        mount --bind "$C" "$R$C"
        mount --bind /tmp "$R/tmp"
        exec chroot "$R" env -i \
            PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
            PYTHONPATH="$C" CI="${CI:-}" TERM="${TERM:-dumb}" \
            /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$C" "$@"
    ' sh "$ROOT" "$CLONE" "$@"
}

build() {
    need_root
    if [ -f "$DIR/.complete" ]; then
        log "reusing $DIR"
        return
    fi
    log "building $DIR (Debian $SUITE root + Python 3.14 venv; a few minutes the first time)"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
    fi
    log "debootstrap $SUITE"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" \
        >"$DIR/debootstrap.log" 2>&1 || { tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
    # pip inside reaches the package registry the way the host does.
    cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    log "venv: requirements/newest-ha.txt"
    in_root python3.14 -m venv "$VENV"
    in_root pip install -q --upgrade pip >&2
    in_root pip install -q -r requirements/newest-ha.txt >&2
    log "venv: requirements of the Home Assistant integrations used"
    # shellcheck disable=SC2086
    mapfile -t reqs < <(in_root python scripts/ha_requirements.py $INTEGRATIONS)
    if ((${#reqs[@]})); then
        in_root pip install -q "${reqs[@]}" >&2
    fi
    log "venv: the bridge's dependencies at Home Assistant's pins"
    in_root pip install -q ./bridge >&2
    touch "$DIR/.complete"
    log "ready: $(in_root python -c 'from homeassistant.const import __version__; print(__version__)')"
}

case "${1:-}" in
    build)
        build
        echo "$ROOT"
        ;;
    run)
        shift
        build
        # exec: CMD keeps this script's pid, so a signal sent to it (the
        # demo stopping `hass`) reaches CMD itself.
        EXEC=exec in_root "$@"
        ;;
    version)
        build
        in_root python -c 'from homeassistant.const import __version__; print(__version__)'
        ;;
    *)
        echo "usage: $0 build | run CMD... | version" >&2
        exit 2
        ;;
esac
