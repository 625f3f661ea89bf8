#!/usr/bin/env bash
# Builds the `tillmesh` binary of a release tag once and caches it under
# target/releases/<tag>/tillmesh (the rolling-upgrade test runs a store on it first). The tag
# is checked out in a git worktree and built in its own target folder (its crates differ
# from the checkout's, so they share no artefacts), which is removed afterwards; only the
# binary is kept. Prints the binary's path.
set -euo pipefail
tag="${1:?usage: scripts/build-release.sh <tag>}"
cd "$(dirname "$0")/.."
out="target/releases/$tag"
bin="$out/tillmesh"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if ! git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
  echo "build-release: no tag $tag in this repository" >&2
  exit 1
fi
mkdir -p "$out"
src="$out/src"
git worktree remove --force "$src" >/dev/null 2>&1 || rm -rf "$src"
git worktree prune
git worktree add --detach "$src" "$tag" >&2
trap 'git worktree remove --force "$src" >/dev/null 2>&1 || true; rm -rf "$out/target"' EXIT
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$out/target" cargo build --locked \
  --manifest-path "$src/Cargo.toml" -p tillmesh --bin tillmesh >&2
cp "$out/target/debug/tillmesh" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
