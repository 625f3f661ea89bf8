#!/usr/bin/env bash
# Builds the `tillmesh` binary of a release once and caches it under
# target/releases/<tag>/tillmesh (the rolling-upgrade test runs a store on it first). The
# release's source comes from tests/fixtures/<tag>/source.tar.xz (`git archive` of the tag,
# less the ONNX models, which the old binary reads from this checkout at run time), so the
# build needs neither the tag nor the history: a checkout without tags or a shallow clone
# builds it too. It is built in the checkout's own target folder with the checkout's debug
# profile (read from its Cargo.toml and passed by `--config`), so every
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
# The checkout's [profile.dev] and every [profile.dev.package.*] setting, read from its
# Cargo.toml and passed as `--config` (which outranks the release's manifest), so each
# dependency is built with the settings the checkout's build uses for it.
# A command substitution, not a process one: `set -e` stops here when python fails.
settings="$(python3 - Cargo.toml <<'PY'
import json, sys, tomllib
dev = tomllib.load(open(sys.argv[1], "rb")).get("profile", {}).get("dev", {})
for key, value in dev.items():
    if key != "package":
        print("--config")
        print(f"profile.dev.{key}={json.dumps(value)}")
for package, settings in dev.get("package", {}).items():
    for key, value in settings.items():
        print("--config")
        print(f"profile.dev.package.{json.dumps(package)}.{key}={json.dumps(value)}")
PY
)"
profile=()
if [ -n "$settings" ]; then mapfile -t profile <<<"$settings"; fi
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$(pwd)/target" cargo build --locked "${profile[@]}" \
  --manifest-path "$src/Cargo.toml" -p tillmesh --bin tillmesh >&2
cp "$ours" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
