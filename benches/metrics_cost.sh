#!/usr/bin/env bash
# Measures what the metrics options cost the stream filter in CPU time,
# with `perf stat -e task-clock` of cfscrub with and without them. The
# corpus is read from the page cache, or through a pipe from cat. Rounds
# alternate the variants, so that drift on a shared machine hits them
# alike.
#
# Usage: benches/metrics_cost.sh [--rounds N] [--pipe] FILE
#
# FILE is a corpus, such as one written by
# `cargo run --release --example bench-corpus -- clean 1073741824 FILE`.
# Prints, for each variant, the median CPU time and the median over the
# rounds of its time over the time without metrics in the same round,
# with the first and third quartiles of that ratio.
set -euo pipefail

cd "$(dirname "$0")/.."

rounds=21
pipe=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --pipe) pipe=true; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "metrics_cost.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [[ $# -ne 1 || ! -f $1 ]]; then
  echo "metrics_cost.sh: expected one corpus FILE (see --help)" >&2
  exit 2
fi
corpus=$1
command -v perf >/dev/null || {
  echo "metrics_cost.sh: perf not found: install the linux-perf package" >&2
  exit 2
}

cargo build --release --locked --quiet
bin=target/release/cfscrub
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Variant name, then the extra arguments of cfscrub.
variants=(
  "none|"
  "textfile|--metrics-textfile $work/metrics.prom"
  "listen|--metrics-listen 127.0.0.1:0"
  "count_lines|--metrics-textfile $work/metrics.prom --count-lines"
)

# Prints the task-clock milliseconds of one run of cfscrub with ARGS.
run_once() {
  local args=$1 line
  if $pipe; then
    # shellcheck disable=SC2086 # ARGS are separate words
    line=$(cat "$corpus" | perf stat -x, -e task-clock "$bin" $args \
      2>&1 >/dev/null | grep task-clock)
  else
    # shellcheck disable=SC2086
    line=$(perf stat -x, -e task-clock "$bin" $args <"$corpus" \
      2>&1 >/dev/null | grep task-clock)
  fi
  printf '%s\n' "${line%%,*}"
}

cat "$corpus" >/dev/null # into the page cache
for round in $(seq "$rounds"); do
  for variant in "${variants[@]}"; do
    name=${variant%%|*}
    printf '%s %s %s\n' "$round" "$name" "$(run_once "${variant#*|}")"
  done
done >"$work/times"

awk -v rounds="$rounds" '
  function median(values, n,    sorted, i) {
    for (i = 1; i <= n; i++) sorted[i] = values[i]
    asort_numeric(sorted, n)
    return n % 2 ? sorted[(n + 1) / 2] : (sorted[n / 2] + sorted[n / 2 + 1]) / 2
  }
  function quartile(values, n, q,    sorted, i) {
    for (i = 1; i <= n; i++) sorted[i] = values[i]
    asort_numeric(sorted, n)
    return sorted[int((n - 1) * q + 1.5)]
  }
  # Insertion sort, since POSIX awk has no sort function.
  function asort_numeric(a, n,    i, j, v) {
    for (i = 2; i <= n; i++) {
      v = a[i]
      for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]
      a[j + 1] = v
    }
  }
  { time[$2, $1] = $3; if (!($2 in seen)) { seen[$2]; order[++names] = $2 } }
  END {
    printf "%-12s %10s %14s %20s\n", "variant", "median ms", "x none", "quartiles of x none"
    for (k = 1; k <= names; k++) {
      name = order[k]
      for (r = 1; r <= rounds; r++) {
        ms[r] = time[name, r]
        ratio[r] = time[name, r] / time["none", r]
      }
      printf "%-12s %10.1f %14.4f %9.4f %9.4f\n", name, median(ms, rounds),
        median(ratio, rounds), quartile(ratio, rounds, 0.25),
        quartile(ratio, rounds, 0.75)
    }
  }
' "$work/times"
