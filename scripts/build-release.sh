#!/usr/bin/env bash
# Builds the `tillmesh` binary of a release once and caches it under
# target/releases/<tag>/tillmesh (the rolling-upgrade test runs a store on it first). The
# release's source comes from tests/fixtures/<tag>/source.tar.xz (`git archive` of the tag,
# less the ONNX models, which the old binary reads from this checkout at run time), so the
# build needs neither the tag nor the history: a checkout without tags or a shallow clone
# builds it too. It is built in its own target folder (its crates differ from the
# checkout's, so they share no artefacts), which is removed afterwards; only the binary is
# kept. Prints the binary's path; exits non-zero with one line when it cannot.
#
# At a release: git archive --prefix=tillmesh-<tag>/ <tag> -- . ':!models/*.onnx' \
#   ':!tests/fixtures' | xz -9e > tests/fixtures/<tag>/source.tar.xz
set -euo pipefail
tag="${1:?usage: scripts/build-release.sh <tag> (a folder of tests/fixtures/ with source.tar.xz)}"
cd "$(dirname "$0")/.."
archive="tests/fixtures/$tag/source.tar.xz"
out="target/releases/$tag"
bin="$out/tillmesh"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if [ ! -f "$archive" ]; then
  echo "build-release: no $archive (the source of release $tag)" >&2
  exit 1
fi
mkdir -p "$out"
src="$out/tillmesh-$tag"
rm -rf "$src" "$out/target"
trap 'rm -rf "$src" "$out/target"' EXIT
tar -xJf "$archive" -C "$out"
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$out/target" cargo build --locked \
  --manifest-path "$src/Cargo.toml" -p tillmesh --bin tillmesh >&2
cp "$out/target/debug/tillmesh" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
