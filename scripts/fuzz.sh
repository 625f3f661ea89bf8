#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly) of what peers, HQ and clients send:
# every target in fuzz/ for SECONDS each (default 600), starting from the committed seed
# corpora in fuzz/corpus/. A crash stops with its input under fuzz/artifacts/<target>/.
#
#     scripts/fuzz.sh            # long run: 10 minutes per target
#     scripts/fuzz.sh 20         # 20 seconds per target
#     scripts/fuzz.sh --build    # only the build
#
# TILLMESH_FUZZ_SMOKE=1 (CI's smoke, where the build is the cost): opt-level 1 with line
# tables only instead of the fuzz profile's level 3, and no AddressSanitizer. Measured alone:
# 12.9 min of build instead of 19 with ASan, and 4-6x the executions in 20 s (ASan slows
# each one). Long runs keep ASan, which also fails a single allocation past -rss_limit_mb
# (libFuzzer's malloc limit needs a sanitizer's allocator hooks; without one only the
# process's resident size is bounded) and checks the C code (SQLite, ring).
#
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz --locked`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
sanitizer=address
if [ "${TILLMESH_FUZZ_SMOKE:-0}" = 1 ]; then
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
  sanitizer=none
fi
targets=(mesh_frame base_decode cloud_batch till_request)
cargo +nightly fuzz build -s "$sanitizer"
if [ "${1:-}" = --build ]; then exit 0; fi
secs="${1:-600}"
for t in "${targets[@]}"; do
  work="$(mktemp -d)"
  cp -r "corpus/$t/." "$work/"
  echo "--- fuzz $t for ${secs}s"
  # -rss_limit_mb bounds memory: a decoder that allocates what a length prefix claims
  # fails here.
  status=0
  # till_request keeps a till (its runtime, database and state) for the whole run, which
  # LeakSanitizer would report at exit; its state grows with what the inputs sell.
  extra=()
  asan="${ASAN_OPTIONS:-}"
  if [ "$t" = till_request ]; then extra=(-detect_leaks=0 -rss_limit_mb=3072); asan="detect_leaks=0"; fi
  ASAN_OPTIONS="$asan" cargo +nightly fuzz run -s "$sanitizer" "$t" "$work" -- -max_total_time="$secs" -rss_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 "${extra[@]}" > "$work.log" 2>&1 || status=$?
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY" "$work.log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$work.log" >&2
    echo "fuzz: $t failed (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  rm -rf "$work" "$work.log"
done
echo "fuzz: every target ran clean"
