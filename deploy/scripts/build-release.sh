#!/usr/bin/env bash
# Builds the release archive that the Ansible roles and cloud-init install:
#   deploy/scripts/build-release.sh [--no-build] [OUT_DIR]
# → OUT_DIR/slipstream-<version>.tar.gz (default OUT_DIR: deploy/release) and a .sha256 beside it.
# The archive holds what runs, nothing else: package.json + package-lock.json (hosts run
# `npm ci --omit=dev --ignore-scripts` on them), the compiled dist/ without tests, the
# parts' READMEs (the units' Documentation=) and deploy/ (units, sysctl, bootstrap).
# <version> is package.json's version plus the commit, so every build is a new release
# directory on the hosts and rollback is flipping a symlink back.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
out=${1:-deploy/release}

if [ "$build" = 1 ]; then
  npm ci --no-audit --no-fund
  npm run build
fi
for f in dist/cli/slipstream.js package.json package-lock.json; do
  [ -e "$f" ] || { echo "build-release: $f is missing; run 'npm ci && npm run build' first" >&2; exit 1; }
done

version=$(node -p 'require("./package.json").version')
if commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then
  # A dirty tree is marked so that nobody mistakes it for the commit.
  if ! git diff --quiet HEAD -- 2>/dev/null; then commit="$commit-dirty"; fi
  version="$version-$commit"
fi

mkdir -p "$out"
archive="$out/slipstream-$version.tar.gz"
# Compiled tests, scripts for developers and source maps are not needed on a host.
tar --create --gzip --file "$archive" \
  --exclude='*.test.js' --exclude='*.test.d.ts' --exclude='*.map' --exclude='*.tsbuildinfo' \
  --exclude='dist/test' --exclude='dist/*/test' --exclude='dist/*/scripts' --exclude='deploy/release' \
  --transform "s,^,slipstream-$version/," \
  package.json package-lock.json \
  dist/cli dist/proto dist/kit dist/relay dist/coordinator dist/sdk dist/sim dist/bench \
  native/udp-batch/binding.gyp native/udp-batch/udp_batch.c native/udp-batch/build.mjs native/udp-batch/udp-batch.d.ts \
  relay/README.md coordinator/README.md sim/README.md \
  deploy
(cd "$out" && sha256sum "$(basename "$archive")" > "$(basename "$archive").sha256")
echo "$archive"
