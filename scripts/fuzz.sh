#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly) of what peers, HQ and clients send:
# every target in fuzz/ for SECONDS each (default 600), starting from the committed seed
# corpora in fuzz/corpus/. A crash stops with its input under fuzz/artifacts/<target>/.
#
#     scripts/fuzz.sh            # long run: 10 minutes per target
#     scripts/fuzz.sh 20         # the CI smoke: 20 seconds per target
#
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz --locked`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-600}"
targets=(mesh_frame base_decode cloud_batch till_request)
cargo +nightly fuzz build
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
  ASAN_OPTIONS="$asan" cargo +nightly fuzz run "$t" "$work" -- -max_total_time="$secs" -rss_limit_mb=1024 \
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
