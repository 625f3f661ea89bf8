#!/usr/bin/env bash
# Builds the `tillmesh` binary of a release once and caches it under
# target/releases/<tag>/tillmesh (the rolling-upgrade test runs a store on it first). The
# release's source comes from tests/fixtures/<tag>/source.tar.xz (`git archive` of the tag,
# less the ONNX models, which the old binary reads from this checkout at run time), so the
# build needs neither the tag nor the history: a checkout without tags or a shallow clone
# builds it too. It is built in the checkout's own target folder with the checkout's debug
# profile for dependencies (`--config` adds what the release's manifest lacks), so every
# dependency of the same version and features is the artefact the checkout's build made or
# will make, not a second build of it (a release's workspace crates have their own version,
# so they never collide with the checkout's). Only the binary is kept: the checkout's own
# `target/debug/tillmesh`, which the release's build replaces, is put back. Prints the
# binary's path; exits non-zero with one line when it cannot.
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
ours="target/debug/tillmesh"
saved="$out/checkout-tillmesh"
rm -rf "$src" "$saved"
restore() {
  rm -rf "$src"
  if [ -e "$saved" ]; then mv -f "$saved" "$ours"; else rm -f "$ours"; fi
}
if [ -e "$ours" ]; then cp -p "$ours" "$saved"; fi
trap restore EXIT
tar -xJf "$archive" -C "$out"
# The checkout's [profile.dev.package] settings that a release's manifest may lack (the
# release's own ones stay: a package's entry outranks "*").
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$(pwd)/target" cargo build --locked \
  --config 'profile.dev.package."*".opt-level=1' \
  --config 'profile.dev.package.rxing.opt-level=3' \
  --config 'profile.dev.package.tillmesh-vision.opt-level=3' \
  --manifest-path "$src/Cargo.toml" -p tillmesh --bin tillmesh >&2
cp "$ours" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
