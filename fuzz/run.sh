#!/usr/bin/env bash
# Run one fuzz target: fuzz/run.sh TARGET SECONDS [libFuzzer args...]
#
# The body of every target is mcp_auth_testkit::fuzzing::<TARGET>. Seeds are read from
# fuzz/corpus/<TARGET> (checked in, never written); what libFuzzer finds goes to
# fuzz/target/work-corpus/<TARGET> (ignored by git); crashes go to fuzz/artifacts/<TARGET>.
# A fixed crash's reproducer belongs in fuzz/regressions/<TARGET>/ (replayed by cargo test).
#
# FUZZ_SANITIZER=address enables ASan (about 2x slower; the core is safe Rust, so the default is
# none). One job, one core.
set -euo pipefail
cd "$(dirname "$0")"
# fuzz/ is its own workspace with its own target directory.
export CARGO_TARGET_DIR="$PWD/target"
target=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer args...]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : $# ))

case "$target" in
  token_validate|token_claims|token_differential) dicts="jwt json" ;;
  bearer_header|www_authenticate) dicts="http" ;;
  metadata_json|client_document|stored_record) dicts="json url oauth" ;;
  uri) dicts="url" ;;
  request_decode) dicts="oauth url" ;;
  as_ops|client_responses|mcp_guard) dicts="" ;;
  *) echo "unknown target: $target" >&2; exit 2 ;;
esac

mkdir -p "target/work-corpus/$target" "corpus/$target" "artifacts/$target"
args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=8192)
if [ -n "$dicts" ]; then
  dict="target/$target.dict"
  for d in $dicts; do cat "dicts/$d.dict"; done > "$dict"
  args+=(-dict="$dict")
fi

exec cargo +nightly fuzz run -s "${FUZZ_SANITIZER:-none}" -a "$target" \
  "target/work-corpus/$target" "corpus/$target" -- "${args[@]}" "$@"
