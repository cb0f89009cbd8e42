#!/bin/sh
# A local stand-in for the Dockerfile's base image (python:3.11-slim-bookworm) where Docker Hub is
# unreachable: Debian bookworm made with debootstrap, with Debian's python3.11, pip and venv, and
# `python` / `pip` on PATH as in the official image. Usage: docker/base-image.sh [TAG]
set -eu
TAG=${1:-python:3.11-slim-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
  bookworm "$ROOT" "$MIRROR" >/dev/null
ln -sf /usr/bin/python3 "$ROOT/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$ROOT/usr/local/bin/pip"
# The official image's Python is its own, not Debian's externally managed one: pip may install.
rm -f "$ROOT"/usr/lib/python3.11/EXTERNALLY-MANAGED
# A network behind a TLS-inspecting proxy needs its CA in the image too: this machine's local CAs
# (/usr/local/share/ca-certificates) join Debian's, and pip and uv are told to use that store.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null
fi
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*
tar -C "$ROOT" -c . | docker import --change 'CMD ["python3"]' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV UV_NATIVE_TLS=1' - "$TAG" >/dev/null
echo "$TAG: Debian bookworm (debootstrap) with $(docker run --rm "$TAG" python --version)"
