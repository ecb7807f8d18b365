#!/usr/bin/env bash
# Installs the pinned tools Floe's tests start as real servers, once, into
# ${FLOE_TOOLS:-$HOME/.cache/floe-tools}/bin (skipped when the binary is there):
#   s3s-fs 0.14.1 — an S3-compatible object store over a local directory (checkpoint storage
#   tests; floe-testkit::s3).
set -euo pipefail

root="${FLOE_TOOLS:-$HOME/.cache/floe-tools}"
bin="$root/bin"
mkdir -p "$bin"

if [ -x "$bin/s3s-fs" ] && "$bin/s3s-fs" --version 2>/dev/null | grep -q '0\.14\.1'; then
    echo "s3s-fs 0.14.1 already installed in $bin"
else
    echo "installing s3s-fs 0.14.1 into $bin (a few minutes, once)"
    cargo install s3s-fs@0.14.1 --features binary --locked --root "$root"
fi
