#!/usr/bin/env bash
# Packages the PyInstaller bundle (dist/multitalk-desktop) as a .deb and a tarball of the same tree:
#   /opt/multitalk-desktop/                     the bundle, untouched
#   /usr/bin/multitalk-desktop[-gui]            launchers on the PATH
#   /usr/share/applications/multitalk-desktop.desktop   menu entry, "Open with" for images/audio
#   /usr/share/icons/hicolor/<n>x<n>/apps/multitalk-desktop.png
# Nothing is written to users' folders: settings, jobs and models live in the platformdirs
# locations (~/.config, ~/.local/share), created at first run and left alone by `dpkg -r`.
#
# Usage: installers/linux/build_deb.sh [BUNDLE_DIR] [OUT_DIR]
# Env: DEB_ZSTD_LEVEL (default 3; 1 for test builds, 19 for a smaller release), STAGE_DIR.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bundle=$(realpath "${1:-$repo/dist/multitalk-desktop}")
out=$(mkdir -p "${2:-$repo/dist}" && realpath "${2:-$repo/dist}")
level=${DEB_ZSTD_LEVEL:-3}
stage=${STAGE_DIR:-$repo/build/deb}

[ -x "$bundle/multitalk-desktop" ] || { echo "No bundle at $bundle: run 'make bundle' first." >&2; exit 1; }
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n1)
[ -n "$version" ] || { echo "No version in pyproject.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
name=multitalk-desktop
root="$stage/root"

rm -rf "$stage"
mkdir -p "$root/opt" "$root/usr/bin" "$root/usr/share/applications" "$root/DEBIAN" \
         "$root/usr/share/doc/$name"
# Hard links when the stage is on the same file system (the bundle is ~1 GB): fast, no copy.
cp -al "$bundle" "$root/opt/$name" 2>/dev/null || cp -a "$bundle" "$root/opt/$name"

for launcher in "$name" "$name-gui"; do
  cat > "$root/usr/bin/$launcher" <<SH
#!/bin/sh
# MultiTalk Desktop launcher (the app lives in /opt/$name).
exec /opt/$name/$launcher "\$@"
SH
  chmod 0755 "$root/usr/bin/$launcher"
done

install -m 0644 "$repo/resources/linux/$name.desktop" "$root/usr/share/applications/$name.desktop"
for png in "$repo"/resources/icons/$name-*.png; do
  size=$(basename "$png" .png); size=${size##*-}
  install -D -m 0644 "$png" "$root/usr/share/icons/hicolor/${size}x${size}/apps/$name.png"
done
install -m 0644 "$repo/installers/linux/copyright" "$root/usr/share/doc/$name/copyright"

installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# The libraries the bundled Qt loads from the system (see docs/PACKAGING.md); Python, torch,
# ffmpeg and the Qt libraries themselves are inside the bundle.
cat > "$root/DEBIAN/control" <<CTRL
Package: $name
Version: $version
Section: video
Priority: optional
Architecture: $arch
Maintainer: MultiTalk Desktop maintainers <multitalk-desktop@users.noreply.github.com>
Installed-Size: $installed_kb
Depends: libc6 (>= 2.31), libgl1, libegl1, libfontconfig1, libfreetype6, libxkbcommon0, libxkbcommon-x11-0, libglib2.0-0 | libglib2.0-0t64, libdbus-1-3, libx11-6, libx11-xcb1, libxcb1, libxrender1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-shm0, libxcb-sync1, libxcb-xfixes0, libxcb-xkb1, libpulse0
Recommends: hicolor-icon-theme, desktop-file-utils
Homepage: https://github.com/MeiGen-AI/MultiTalk
Description: Offline talking-video studio (MeiGen MultiTalk on your own GPU)
 Turn a portrait and one or two voices into a talking video, on your own
 NVIDIA GPU, without an internet connection once the models are downloaded.
 A window for creators, a job queue, and a command-line tool.
 .
 Model weights are not included: the app downloads them on first use into
 your data folder (~/.local/share/MultiTalkDesktop/models).
CTRL

deb="$out/${name}_${version}_${arch}.deb"
tarball="$out/${name}-${version}-linux-${arch}.tar.zst"
start=$(date +%s)
dpkg-deb --root-owner-group -Zzstd -z"$level" --build "$root" "$deb" >/dev/null
echo "build_deb: $deb ($(du -m "$deb" | cut -f1) MB) in $(( $(date +%s) - start )) s"
start=$(date +%s)
# Same tree as the package (opt/, usr/): `sudo tar -C / -xf` installs it like the .deb; or
# extract anywhere and run opt/multitalk-desktop/multitalk-desktop.
tar --owner=0 --group=0 --numeric-owner -C "$root" --exclude=./DEBIAN -cf - . \
  | zstd -q -T0 -"$level" -o "$tarball" -f
echo "build_deb: $tarball ($(du -m "$tarball" | cut -f1) MB) in $(( $(date +%s) - start )) s"
