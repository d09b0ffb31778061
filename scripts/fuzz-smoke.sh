#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a short while (FUZZ_SECONDS, default
# 20) from its committed seed corpus. New corpus entries go to a temporary
# directory, so the committed seeds stay small. Needs a nightly toolchain and
# cargo-fuzz; without them it says so and exits 0 (CI stays green on stable-only
# machines). A crash fails the script and leaves the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-smoke: skipped (no nightly toolchain; rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: skipped (cargo-fuzz not installed; cargo install cargo-fuzz)"
    exit 0
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$scratch/$target"
    echo "fuzz-smoke: $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=0
done
echo "fuzz-smoke: all targets ran without a crash"
