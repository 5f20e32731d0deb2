#!/usr/bin/env bash
# Fuzzing: run every cargo-fuzz target in fuzz/ for N seconds and print executions and the
# result per target. Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). It uses the nightly
# toolchain when rustup has one, otherwise the stable one with RUSTC_BOOTSTRAP=1 (cargo-fuzz
# passes compiler flags that stable rustc takes only so; no toolchain is downloaded).
#
#   bench/fuzz.sh [SECONDS]          SECONDS per target, default 1800 (the nightly-style long run)
#
# Environment:
#   FUZZ_TARGETS="cml_reader orders_reader zip query"   which targets
#   FUZZ_PARALLEL=1      how many targets run at the same time (each uses one core)
#   FUZZ_RSS_MB=2048     libFuzzer's -rss_limit_mb
#   FUZZ_PROFILE=release  release (optimized, the long runs) or dev (unoptimized: a quicker cold
#                        build, fewer executions a second; CI's smoke uses it)
#   FUZZ_SANITIZER=none  cargo-fuzz's -s: the fuzzed code of obmen is safe Rust, so the runs look
#                        for panics, hangs and memory blow-ups without a sanitizer (a build of a
#                        third of the time); `address` adds ASan for the dependencies' unsafe code.
#
# New inputs libFuzzer finds go to fuzz/work/<target>/ (not committed); the seed corpus in
# fuzz/corpus/<target>/ is only read. A crash, timeout or OOM leaves its input in
# fuzz/artifacts/<target>/ (reproduce: `cargo fuzz run -a -s none <target> <file>`); the
# libFuzzer output of each run is in fuzz/artifacts/<target>.log.
# Exit status: 0 when every target ran clean.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
FUZZ=$(pwd)

SECS=${1:-1800}
TARGETS=${FUZZ_TARGETS:-cml_reader orders_reader zip query}
PARALLEL=${FUZZ_PARALLEL:-1}
# FUZZ_SEED: libFuzzer's seed (CI fixes it, so its smoke takes the same path every time).
RSS_MB=${FUZZ_RSS_MB:-2048}
SANITIZER=${FUZZ_SANITIZER:-none}
case "${FUZZ_PROFILE:-release}" in
  release) PROFILE_ARGS=(-a) ;;
  dev) PROFILE_ARGS=(--dev -a) ;;
  *) echo "fuzz: FUZZ_PROFILE must be release or dev" >&2; exit 2 ;;
esac
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  TOOLCHAIN=nightly
  fuzz() { cargo +nightly fuzz "$@"; }
else
  TOOLCHAIN="stable, RUSTC_BOOTSTRAP=1"
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi

extra_args() {
  case "$1" in
    cml_reader | orders_reader) echo "-dict=$FUZZ/xml.dict -max_len=65536" ;;
    zip) echo "-max_len=65536 -timeout=60" ;;
    *) echo "-max_len=4096" ;;
  esac
}

start=$(date +%s)
echo "== fuzz: building the targets ($TOOLCHAIN, ${FUZZ_PROFILE:-release} with debug assertions, sanitizer $SANITIZER)"
fuzz build "${PROFILE_ARGS[@]}" -s "$SANITIZER" || { echo "fuzz: build failed"; exit 2; }
echo "fuzz: built in $(($(date +%s) - start)) s"

run_one() {
  local t=$1 log="$FUZZ/artifacts/$1.log"
  mkdir -p "$FUZZ/work/$t" "$FUZZ/artifacts/$t"
  # shellcheck disable=SC2046
  fuzz run "${PROFILE_ARGS[@]}" -s "$SANITIZER" "$t" "$FUZZ/work/$t" "$FUZZ/corpus/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb="$RSS_MB" -print_final_stats=1 ${FUZZ_SEED:+-seed=$FUZZ_SEED} \
    $(extra_args "$t") >"$log" 2>&1
  local rc=$?
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  local cov
  cov=$(grep -oE '(#[0-9]+).*(DONE|INITED).*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+')
  if [ "$rc" -eq 0 ]; then
    printf '%-14s %6ss  execs %-12s %-10s ok\n' "$t" "$SECS" "${execs:-?}" "${cov:-}"
  else
    local art
    art=$(grep -oE 'artifact_prefix=[^;]*; Test unit written to [^ ]+' "$log" | tail -1 | sed 's/.*written to //')
    printf '%-14s %6ss  execs %-12s %-10s FAILED (rc %s) %s (log %s)\n' \
      "$t" "$SECS" "${execs:-?}" "${cov:-}" "$rc" "${art:-}" "$log"
  fi
  return $rc
}

failed=0
running=0
pids=()
for t in $TARGETS; do
  run_one "$t" &
  pids+=($!)
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
echo "fuzz: done in $(($(date +%s) - start)) s"
exit $failed
