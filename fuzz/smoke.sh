#!/usr/bin/env bash
# Smoke run of every fuzz target: install cargo-fuzz if missing, build all targets once, run each
# for SMOKE_SECONDS (default 20) and print executions per second and coverage per target.
# Exits non-zero if any target crashes. The libFuzzer seed is fixed (SMOKE_SEED, default 1) so
# that a CI failure reproduces; run.sh with a longer time explores further. Needs the nightly toolchain (`cargo +nightly`).
set -euo pipefail
cd "$(dirname "$0")"
# fuzz/ is its own workspace with its own target directory.
export CARGO_TARGET_DIR="$PWD/target"
seconds=${SMOKE_SECONDS:-20}
targets=(token_validate token_claims token_differential bearer_header www_authenticate
         metadata_json request_decode uri as_ops client_responses mcp_guard client_document
         stored_record)

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo +nightly --version

start=$(date +%s)
cargo +nightly fuzz build -s "${FUZZ_SANITIZER:-none}" -a
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - start ))s"

mkdir -p target/smoke
summary=()
status=0
for t in "${targets[@]}"; do
  log="target/smoke/$t.log"
  if ./run.sh "$t" "$seconds" -seed="${SMOKE_SEED:-1}" >"$log" 2>&1; then result=ok; else result=FAILED; status=1; fi
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
  eps=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -1)
  line=$(printf '%-20s %-6s runs=%-9s exec/s=%-7s cov=%-6s ft=%s' "$t" "$result" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}")
  echo "$line"
  summary+=("$line")
  if [ "$result" = FAILED ]; then tail -40 "$log"; fi
done
echo
echo "fuzz smoke (${seconds}s per target, total $(( $(date +%s) - start ))s):"
printf '%s\n' "${summary[@]}"
exit $status
