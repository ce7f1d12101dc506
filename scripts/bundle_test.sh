#!/usr/bin/env bash
# `make bundle-test`: builds the frozen app and checks that it works as users get it.
#  1. python build_spec.py -> dist/multitalk-desktop (skipped with BUNDLE_TEST_REUSE=1 if built)
#  2. from dist/: --version (matches pyproject), doctor --json, selftest (prints OK), snapshots
#     offscreen, imports the frozen torch/diffusers/Qt multimedia need, cold-start timings
#  3. installers/linux/build_deb.sh: the .deb and the tarball (fast zstd)
#  4. as root: dpkg -i, `multitalk-desktop selftest` from the installed copy with a fresh user
#     home (first run: platformdirs folders), dpkg -r, the user's data folder untouched
# Steps this machine cannot run (no root or dpkg for the install check) are reported PENDING.
# Exit status: 0 when nothing FAILED.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PY=${PY:-.venv/bin/python}
app=dist/multitalk-desktop
exe=$app/multitalk-desktop
work=$(mktemp -d "${TMPDIR:-/tmp}/multitalk-bundle-test.XXXXXX")
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
results=()
failed=0
t_all=$(date +%s)

note() { results+=("$1"); echo "bundle-test: $1"; }
pass() { note "PASS    $1"; }
fail() { note "FAIL    $1"; failed=1; }
pending() { note "PENDING $1"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# Runs a frozen command; PASS when it exits 0 and its output matches $2 (a grep -E pattern).
check() {
  local label=$1 pattern=$2; shift 2
  local log="$work/$(echo "$label" | tr -c 'a-zA-Z0-9' '_').log" start rc
  start=$(date +%s%N)
  "$@" >"$log" 2>&1; rc=$?
  local took; took=$(ms_since "$start")
  if [ $rc -eq 0 ] && grep -Eq "$pattern" "$log"; then
    pass "$label (${took} ms)"
  elif grep -q "not built yet" "$log"; then
    fail "$label: the command is not built in this version"
  else
    fail "$label (exit $rc, ${took} ms): $(tail -n 5 "$log" | tr '\n' ' ' | cut -c1-600)"
  fi
}

# doctor exits 1 when a check fails (no GPU, no models: expected here); its JSON must still come.
check_doctor() {
  local label=$1; shift
  local log="$work/$(echo "$label" | tr -c 'a-zA-Z0-9' '_').log" rc
  "$@" >"$log" 2>"$log.err"; rc=$?
  if [ $rc -le 1 ] && "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"] and d["torch"], d' "$log" 2>>"$log.err"; then
    pass "$label (exit $rc: $("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("torch", d["torch"], "cuda", d["cuda_available"])' "$log"))"
  else
    fail "$label (exit $rc): $(tail -n 5 "$log.err" "$log" | tr '\n' ' ' | cut -c1-600)"
  fi
}
check_ok() {  # PASS when the command exits 0
  local label=$1; shift
  if "$@"; then pass "$label"; else fail "$label"; fi
}

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n1)

# 1. Build -------------------------------------------------------------------------------------
if [ "${BUNDLE_TEST_REUSE:-0}" = 1 ] && [ -x "$exe" ]; then
  pass "bundle reused from $app"
else
  start=$(date +%s)
  if "$PY" build_spec.py 2>&1 | tee "$work/build.log" | grep -E "^build_spec:|ERROR|Error:"; then :; fi
  if [ -x "$exe" ] && grep -q "^build_spec: bundle" "$work/build.log"; then
    pass "build: $(grep '^build_spec: bundle' "$work/build.log" | sed 's/^build_spec: //') (step $(( $(date +%s) - start )) s)"
  else
    fail "build: see $work/build.log"; printf '%s\n' "${results[@]}"; exit 1
  fi
fi

# 2. The frozen app from dist/ -------------------------------------------------------------------
export MULTITALK_DESKTOP_HOME="$work/home"
check "--version is $version" "^multitalk-desktop $(printf '%s' "$version" | sed 's/\./\\./g')\$" "$exe" --version
start=$(date +%s%N); "$exe" --version >/dev/null 2>&1; cold_version=$(ms_since "$start")
check_doctor "doctor --json (torch imports in the frozen app)" "$exe" doctor --json
cat > "$work/imports.py" <<'PYEOF'
import sys, time
t = time.perf_counter()
import torch, diffusers, transformers  # noqa: E401
from PySide6.QtMultimedia import QMediaPlayer  # noqa: F401
from multitalk_desktop.media.ffmpeg import ffmpeg_exe, has_encoder
assert has_encoder("libx264"), "bundled ffmpeg lacks libx264"
x = torch.ones(4, 4) @ torch.ones(4, 4)
print(f"imports OK torch {torch.__version__} diffusers {diffusers.__version__} "
      f"transformers {transformers.__version__} sum={float(x.sum())} in {time.perf_counter() - t:.1f} s")
PYEOF
check "frozen imports (torch, diffusers, transformers, QtMultimedia, ffmpeg)" "^imports OK" \
  env MULTITALK_DESKTOP_RUN_PY="$work/imports.py" "$exe"
check "selftest" "^OK" "$exe" selftest
check "snapshots offscreen" "." "$exe" snapshots "$work/snapshots"
if compgen -G "$work/snapshots/*.png" >/dev/null; then
  pass "snapshots: $(ls "$work/snapshots"/*.png | wc -l) PNG files"
fi
# Cold start to a shown window (offscreen), timed from launching the windowed entry to the
# GUI's "window shown" line (MULTITALK_DESKTOP_PRINT_STARTUP); it closes itself after 1 s.
gui_log="$work/window.log"
start=$(date +%s%N)
MULTITALK_DESKTOP_PRINT_STARTUP=1 MULTITALK_DESKTOP_QUIT_AFTER_MS=1000 \
  timeout 120 "$app/multitalk-desktop-gui" 2>&1 | while IFS= read -r line; do
    echo "$line" >>"$gui_log"
    case $line in "window shown"*) echo "cold_window_ms=$(ms_since "$start")" >>"$gui_log";; esac
  done
cold_window=$(sed -n 's/^cold_window_ms=//p' "$gui_log" 2>/dev/null)
if [ -n "$cold_window" ]; then
  pass "cold start to a visible window (offscreen): ${cold_window} ms"
else
  fail "window: no 'window shown' line: $(tail -n 5 "$gui_log" 2>/dev/null | tr '\n' ' ' | cut -c1-600)"
fi

# 3. Packages ----------------------------------------------------------------------------------
start=$(date +%s)
if DEB_ZSTD_LEVEL=${DEB_ZSTD_LEVEL:-1} STAGE_DIR="$repo/build/deb" \
    bash installers/linux/build_deb.sh "$app" "$repo/dist" >"$work/deb.log" 2>&1; then
  pass "packages: $(grep -o '[^/]*\.\(deb\|tar\.zst\) ([0-9]* MB)' "$work/deb.log" | tr '\n' ' ')(step $(( $(date +%s) - start )) s)"
else
  fail "packages: $(tail -n 5 "$work/deb.log" | tr '\n' ' ')"
fi
deb=$(ls -t dist/multitalk-desktop_"$version"_*.deb 2>/dev/null | head -n1)

# 4. Install, self-test, remove -----------------------------------------------------------------
if [ -z "$deb" ]; then
  fail "install: no .deb was built"
elif [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null; then
  pending "install: needs root and dpkg (run as root to check dpkg -i / dpkg -r)"
elif dpkg -s multitalk-desktop >/dev/null 2>&1; then
  pending "install: multitalk-desktop is already installed on this machine; left alone"
else
  unset MULTITALK_DESKTOP_HOME
  user_home="$work/user"
  data="$user_home/.local/share/MultiTalkDesktop"
  mkdir -p "$data/models/MeiGen-MultiTalk" "$data/outputs"
  echo "weights the user downloaded" > "$data/models/MeiGen-MultiTalk/multitalk.safetensors"
  echo "a video the user made" > "$data/outputs/keep.mp4"
  as_user() { env -u XDG_DATA_HOME -u XDG_CONFIG_HOME -u XDG_STATE_HOME HOME="$user_home" "$@"; }
  start=$(date +%s)
  if dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1; then
    pass "dpkg -i ($(( $(date +%s) - start )) s)"
    check "installed launcher --version" "^multitalk-desktop $version" as_user multitalk-desktop --version
    check_ok "installed desktop entry and icon" test -f /usr/share/applications/multitalk-desktop.desktop -a \
      -f /usr/share/icons/hicolor/256x256/apps/multitalk-desktop.png
    check_doctor "installed doctor --json, first run" as_user multitalk-desktop doctor --json
    check_ok "first run created the platformdirs folders (~/.config, ~/.local/share)" \
      test -d "$user_home/.config/MultiTalkDesktop" -a -d "$data/jobs"
    check "installed selftest" "^OK" as_user multitalk-desktop selftest
    before=$(cd "$user_home" && find . -type f -exec sha256sum {} + | sort)
    start=$(date +%s)
    if dpkg -r multitalk-desktop >"$work/dpkg-r.log" 2>&1; then
      pass "dpkg -r ($(( $(date +%s) - start )) s)"
    else
      fail "dpkg -r: $(tail -n 3 "$work/dpkg-r.log" | tr '\n' ' ')"
    fi
    after=$(cd "$user_home" && find . -type f -exec sha256sum {} + | sort)
    if [ "$before" = "$after" ] && [ -s "$data/models/MeiGen-MultiTalk/multitalk.safetensors" ]; then
      pass "user's data folder untouched by the uninstall ($(echo "$after" | grep -c .) files)"
    else
      fail "user's data folder changed by the uninstall"
    fi
    if [ -e /opt/multitalk-desktop ] || [ -e /usr/bin/multitalk-desktop ]; then
      fail "dpkg -r left /opt/multitalk-desktop or /usr/bin/multitalk-desktop behind"
    else
      pass "dpkg -r removed /opt/multitalk-desktop and the launchers"
    fi
  else
    fail "dpkg -i: $(tail -n 5 "$work/dpkg-i.log" | tr '\n' ' ')"
    dpkg -r multitalk-desktop >/dev/null 2>&1 || true
  fi
fi

echo
echo "bundle-test summary ($(( $(date +%s) - t_all )) s; cold start: --version ${cold_version:-?} ms, window ${cold_window:-?} ms; logs in $work)"
printf '  %s\n' "${results[@]}"
exit $failed
