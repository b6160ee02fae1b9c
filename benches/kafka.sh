#!/usr/bin/env bash
# Measures consume-redact-produce by `cfscrub kafka` beside a pass-through
# copy by `kcat -C … | kcat -P …`, on one broker and one input topic, in
# alternating rounds.
#
# Usage: benches/kafka.sh
#
# Environment (defaults in brackets):
#   KAFKA_PORT       port of the broker on 127.0.0.1; a broker already
#                    running there is used, else one is started and
#                    stopped at the end [19292]
#   BENCH_RECORDS    records in the input topic [1000000]
#   BENCH_ROUNDS     rounds, each running both tools once [3]
#   BENCH_PARTITIONS partitions of every topic [4]
#   BENCH_ARGS       more arguments for cfscrub kafka, such as --exactly-once
#
# The input is the lines of the loghub samples in ../shared/corpus/loghub
# (or CFSCRUB_CORPUS), repeated, one record per line, with one generated
# checksum-valid user token about every 64 KiB. Generated, so the
# repository contains none.
#
# Each figure is records (and value bytes) divided by the wall time from
# starting the tool until every record is in its output topic. cfscrub's
# time includes joining the group, which is reported on its own too. The
# CPU seconds (user and system, both kcat processes together) depend less
# on what else the machine runs. The load average is printed at the start
# and the end, because other work on the machine slows both tools.
set -euo pipefail

cd "$(dirname "$0")/.."

export KAFKA_PORT="${KAFKA_PORT:-19292}"
RECORDS="${BENCH_RECORDS:-1000000}"
ROUNDS="${BENCH_ROUNDS:-3}"
PARTITIONS="${BENCH_PARTITIONS:-4}"
read -r -a EXTRA_ARGS <<<"${BENCH_ARGS:-}"
CORPUS="${CFSCRUB_CORPUS:-../shared/corpus/loghub}"
BROKER="127.0.0.1:${KAFKA_PORT}"
CFSCRUB=target/release/cfscrub
METRICS_PORT=$((KAFKA_PORT + 10))

log() {
  printf 'kafka bench: %s\n' "$*" >&2
}

die() {
  printf 'kafka bench: error: %s\n' "$*" >&2
  exit 1
}

for tool in kcat curl python3; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH; run scripts/setup-test-deps.sh"
done
[[ -d "$CORPUS" ]] || die "corpus directory $CORPUS not found; set CFSCRUB_CORPUS"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/cfscrub-kafka-bench.XXXXXX")"
STARTED_BROKER=0
cleanup() {
  if [[ -n "${MEMBER_PID:-}" ]]; then
    kill -KILL "$MEMBER_PID" 2>/dev/null || true
  fi
  if ((STARTED_BROKER)); then
    scripts/kafka.sh stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start
  STARTED_BROKER=1
fi

log "building cfscrub"
cargo build --release --locked --quiet

log "writing $RECORDS records of the loghub samples"
python3 - "$CORPUS" "$RECORDS" >"$WORK/corpus.txt" <<'EOF'
import os, random, string, sys, zlib

corpus, records = sys.argv[1], int(sys.argv[2])
lines = []
for name in sorted(os.listdir(corpus)):
    if name.endswith(".log"):
        with open(os.path.join(corpus, name), "rb") as f:
            lines += [l.rstrip(b"\r\n") for l in f if l.strip()]
rng = random.Random(7)
out = sys.stdout.buffer
written = 0
for n in range(records):
    line = lines[n % len(lines)]
    written += len(line) + 1
    if written >= 65536:
        written = 0
        body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
        token = "cfut_" + body + "%08x" % zlib.crc32(body.encode())
        line += b" token=" + token.encode()
    out.write(line + b"\n")
EOF
BYTES=$(($(wc -c <"$WORK/corpus.txt") - RECORDS))

INPUT="bench-in-$$"
scripts/kafka.sh create-topic "$INPUT" "$PARTITIONS" >/dev/null 2>&1 ||
  die "creating topic $INPUT failed"
kcat -P -b "$BROKER" -t "$INPUT" -l "$WORK/corpus.txt"
log "input topic $INPUT: $RECORDS records, $BYTES value bytes, $PARTITIONS partitions"

now() {
  date +%s.%N
}

# Prints the number of records in every partition of TOPIC together.
topic_records() {
  kcat -C -b "$BROKER" -t "$1" -o -1 -e -q -f '%p %o\n' 2>/dev/null |
    awk '{ sum += $2 + 1 } END { print sum + 0 }'
}

# Prints cfscrub's count of written records, from its metrics endpoint.
member_written() {
  curl -s "http://127.0.0.1:${METRICS_PORT}/metrics" |
    awk '/^cfscrub_written_records_total\{source="kafka"\}/ { print $2 }'
}

run_kcat() {
  local round="$1" output="bench-copy-$$-$1" start end
  scripts/kafka.sh create-topic "$output" "$PARTITIONS" >/dev/null 2>&1
  local TIMEFORMAT='%U %S' cpu
  start=$(now)
  # `time` on the pipeline reports the CPU time of both kcat processes.
  cpu=$({ time kcat -C -b "$BROKER" -t "$INPUT" -o beginning -e -q |
    kcat -P -b "$BROKER" -t "$output"; } 2>&1)
  end=$(now)
  local copied
  copied=$(topic_records "$output")
  ((copied == RECORDS)) || die "kcat copied $copied of $RECORDS records"
  report kcat "$round" "$start" "$end" "" "$(awk '{ print $1 + $2 }' <<<"$cpu")"
}

run_cfscrub() {
  local round="$1" output="bench-red-$$-$1" start ready="" end written
  scripts/kafka.sh create-topic "$output" "$PARTITIONS" >/dev/null 2>&1
  start=$(now)
  "$CFSCRUB" kafka --brokers "$BROKER" --group "bench-$$-$round" \
    --input-topic "$INPUT" --output-topic "$output" \
    --metrics-listen "127.0.0.1:${METRICS_PORT}" "${EXTRA_ARGS[@]}" \
    2>"$WORK/member.log" &
  MEMBER_PID=$!
  while :; do
    if [[ -z "$ready" ]] &&
      curl -sf "http://127.0.0.1:${METRICS_PORT}/readyz" >/dev/null 2>&1; then
      ready=$(now)
    fi
    written=$(member_written 2>/dev/null || true)
    if [[ -n "$written" ]] && ((${written%.*} >= RECORDS)); then
      break
    fi
    kill -0 "$MEMBER_PID" 2>/dev/null || die "cfscrub exited: $(tail -3 "$WORK/member.log")"
    sleep 0.02
  done
  end=$(now)
  local cpu
  cpu=$(process_cpu "$MEMBER_PID")
  kill -TERM "$MEMBER_PID"
  wait "$MEMBER_PID" || die "cfscrub exited with $? after SIGTERM"
  MEMBER_PID=""
  report cfscrub "$round" "$start" "$end" "$ready" "$cpu"
}

# Prints the user and system CPU seconds that process PID used so far.
process_cpu() {
  awk -v ticks="$(getconf CLK_TCK)" '{ print ($14 + $15) / ticks }' "/proc/$1/stat"
}

# Prints one result line: tool, round, seconds, records/s, MiB/s, CPU
# seconds, and the seconds until cfscrub joined its group.
report() {
  local tool="$1" round="$2" start="$3" end="$4" ready="$5" cpu="$6"
  awk -v tool="$tool" -v round="$round" -v s="$start" -v e="$end" \
    -v r="$ready" -v n="$RECORDS" -v b="$BYTES" -v cpu="$cpu" 'BEGIN {
      t = e - s
      join = (r == "") ? "-" : sprintf("%.2f", r - s)
      printf "%-8s round %d  %6.2f s  %9.0f records/s  %6.1f MiB/s  cpu %5.2f s  join %s s\n",
        tool, round, t, n / t, b / t / 1048576, cpu, join
    }' | tee -a "$WORK/results.txt"
}

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; round++)); do
  run_kcat "$round"
  run_cfscrub "$round"
done

# Prints the median seconds of TOOL over the rounds.
median() {
  awk -v tool="$1" '$1 == tool { print $4 }' "$WORK/results.txt" | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
kcat_median=$(median kcat)
cfscrub_median=$(median cfscrub)
awk -v k="$kcat_median" -v c="$cfscrub_median" 'BEGIN {
  printf "median: kcat %.2f s, cfscrub %.2f s, cfscrub rate / kcat rate = %.2f\n", k, c, k / c
}'
