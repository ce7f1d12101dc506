#!/usr/bin/env bash
# Qt (offscreen, multimedia, xcb under Xvfb) loads these system libraries. Installs the missing
# ones when run as root on Debian/Ubuntu; otherwise prints the apt-get line and stops.
set -uo pipefail
command -v dpkg-query >/dev/null 2>&1 || exit 0   # not a Debian system: nothing we can check
pkgs="libpulse0 libsndfile1 libasyncns0 libegl1 libgl1 libfontconfig1 libfreetype6 libxkbcommon0
libglib2.0-0 libdbus-1-3 libx11-6 libx11-xcb1 libxcb1 libxrandr2 libxrender1 libdrm2
libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0
xvfb xauth"
missing=()
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system libraries Qt needs: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get failed; run: sudo apt-get install ${missing[*]}" >&2; exit 1; }
else
  echo "Qt needs system libraries that are not installed. Run:" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
