#!/usr/bin/env bash
# The whole test suite: lint, type checks and every pytest session.
# Runs each step even when an earlier one failed, then prints one summary
# line and exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# This clone's code first, also for subprocesses (see the Makefile).
export PYTHONPATH="$PWD"
VENV=.venv
OUT=$(mktemp -d)
failed_steps=()

step() {
    local name=$1; shift
    printf '\n==== %s ====\n' "$name"
    if "$@"; then
        printf -- '---- %s: ok\n' "$name"
    else
        printf -- '---- %s: FAILED\n' "$name"
        failed_steps+=("$name")
    fi
}

suite() {
    # suite NAME DIR [pytest args...]: one pytest session with a JUnit report.
    local name=$1 dir=$2; shift 2
    "$VENV/bin/python" -m pytest "$dir" -q -o junit_family=xunit2 \
        --junitxml="$OUT/$name.xml" "$@"
}

newest_suite() {
    # newest_suite NAME DIR [pytest args...]: the same, on the newest Home
    # Assistant (Python 3.14 in the Debian root of scripts/newest_ha.sh).
    local name=$1 dir=$2; shift 2
    scripts/newest_ha.sh run python -m pytest "$dir" -q -p no:cacheprovider \
        -o junit_family=xunit2 --junitxml="$OUT/$name.xml" "$@"
}

OLDEST_HA=$("$VENV/bin/python" -c 'from homeassistant.const import __version__; print(__version__)')
step ruff "$VENV/bin/ruff" check bridge vehicle_agent custom_components demo tests benchmarks scripts
step mypy "$VENV/bin/mypy" bridge vehicle_agent demo
# Its own run: custom_components/ and carhub/ would be two names for one module.
step "mypy (integration)" "$VENV/bin/mypy" custom_components/carhub
step agent suite agent tests/agent -p no:homeassistant
step voice suite voice tests/voice -p no:homeassistant
step bridge suite bridge tests/bridge -p no:homeassistant
step "integration (Home Assistant $OLDEST_HA)" suite "integration-ha$OLDEST_HA" tests/integration
# The newest Home Assistant's root is built on first use (a few minutes) and
# cached under ~/.cache/carhub/ like the venv.
step "newest Home Assistant environment" scripts/newest_ha.sh build
NEWEST_HA=$(scripts/newest_ha.sh version 2>/dev/null || echo unknown)
step "integration (Home Assistant $NEWEST_HA)" newest_suite "integration-ha$NEWEST_HA" tests/integration
# The end-to-end demo check runs `hass` of the newest release (the demo's default).
step e2e suite e2e tests/e2e -p no:homeassistant

# One closing line over all sessions.
"$VENV/bin/python" - "$OUT" <<'PY'
import sys, pathlib, xml.etree.ElementTree as ET
tests = failures = skipped = 0
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for s in ET.parse(f).getroot().iter("testsuite"):
        tests += int(s.get("tests", 0))
        failures += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
print()
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    t = fl = sk = 0
    for s in ET.parse(f).getroot().iter("testsuite"):
        t += int(s.get("tests", 0))
        fl += int(s.get("failures", 0)) + int(s.get("errors", 0))
        sk += int(s.get("skipped", 0))
    print(f"{f.stem:>28}: {t - fl - sk} passed, {fl} failed, {sk} skipped")
print(f"\nall suites: {tests - failures - skipped} passed, {failures} failed, {skipped} skipped")
PY
rm -rf "$OUT"
if ((${#failed_steps[@]})); then
    echo "FAILED steps: ${failed_steps[*]}"
    exit 1
fi
echo "all steps passed"
