#!/usr/bin/env bash
# Writes the seed inputs of every fuzz target to fuzz/corpus/TARGET/, the
# directories that `cargo fuzz run` reads and adds to. Seeds hold no
# credential: the redact_diff target generates credentials at run time
# from the splice instructions in its seeds (see the header of
# fuzz_targets/redact_diff.rs). Existing corpus files are kept.
#
# The real log samples in ../shared/corpus/loghub, beside the repository,
# are used as well when they are there.
set -euo pipefail

cd "$(dirname "$0")"
CORPUS=corpus
LOGHUB=../../shared/corpus/loghub

# seed TARGET NAME FORMAT [ARGUMENTS...]: writes printf's output to the
# seed file NAME of TARGET.
seed() {
  local target="$1" name="$2" format="$3"
  shift 3
  mkdir -p "$CORPUS/$target"
  # shellcheck disable=SC2059 # the format is the seed's text
  printf "$format" "$@" >"$CORPUS/$target/seed-$name"
}

# args TARGET NAME ARG...: writes the arguments separated by NUL bytes.
args() {
  local target="$1" name="$2"
  shift 2
  mkdir -p "$CORPUS/$target"
  local first=true arg
  for arg in "$@"; do
    [[ "$first" == true ]] || printf '\0'
    printf '%s' "$arg"
    first=false
  done >"$CORPUS/$target/seed-$name"
}

# redact_diff. A header of 5 bytes: kinds bitmask (0 is every kind),
# level (bits 0-1) and style (bits 2-3), window (u16, little-endian; 0 is
# the default), chunk-size count (bits 0-2) and keyword count (bits 3-4).
# Then one byte per chunk size and a length byte and the bytes of each
# keyword. The rest is the script, in which \xff OP ARG splices a piece.
# OP 0-5 is a credential of that kind (user, account, global, legacy
# token, legacy key, Origin CA). OP 6 is a wrong checksum, 7 a cut-off
# credential, 8 a keyword, 9 a prefix, 10 hex digits, 11 a 40-character
# body, 12 a legacy token, 13 filler lines, 14 a separator and 15 the
# byte \xff itself.
target=redact_diff
seed $target prefixed '\0\0\0\0\3\1\7\310token=\xff\0\1 user=alice\n\xff\1\2&\xff\2\3\n'
seed $target legacy '\0\0\0\0\2\2\55CF_API_TOKEN=\xff\3\5\nX-Auth-Key: \xff\4\11\n'
seed $target origin-ca '\0\4\0\0\1\3key \xff\5\2\n\xff\11\3\xff\12\30\n'
seed $target near-misses '\0\0\0\0\3\1\2\3\xff\6\21 \xff\7\34\n\xff\11\0\xff\13\0\xff\12\10\n'
seed $target stitched '\0\10\0\0\2\320\1\xff\15\100\xff\0\2\xff\15\20\xff\3\7\n'
seed $target fingerprint '\77\10\200\0\4\0\1\2\3\xff\2\4 \xff\7\4\n'
seed $target keyword '\0\1\20\0\21\5\10MY_TOKENvalue=\xff\10\12\xff\16\3\xff\14\1\n'
seed $target zero-pushes '\0\0\0\0\3\0\0\1\xff\0\5\xff\1\6\xff\2\7'
if [[ -d "$LOGHUB" ]]; then
  for log in "$LOGHUB"/*.log; do
    name="$(basename "$log" .log)"
    { printf '\0\0\0\0\2\3\300'; head -c 3000 "$log"; } \
      >"$CORPUS/$target/seed-loghub-$name"
  done
fi

# cli_args: the arguments after `cfscrub`, separated by NUL bytes.
target=cli_args
args $target filter-empty
args $target filter-engine --style mask --kinds user_token,legacy_token \
  --skip-kinds origin_ca_key --keyword MY_TOKEN --context-window 4096 \
  --min-level contextual -
args $target filter-metrics --findings - --fail-on-find \
  --metrics-listen :9898 --metrics-linger 5 --metrics-textfile /tmp/x.prom \
  --metrics-textfile-interval 0.5 a.log b.log
args $target demo demo --seed 7 --style fingerprint
args $target follow follow '/var/log/app/*.log' /var/log/b.log \
  --checkpoint /tmp/follow.checkpoint --checkpoint-interval 2 \
  --poll-interval 0.25 --poll --metrics-listen '[::1]:0' -o out.log
args $target follow-no-metrics follow --from-start --no-metrics 'x/[ab]?.log'
args $target kafka kafka --brokers 127.0.0.1:9092 --group g \
  --input-topic '^logs-.*' --input-topic a --output-topic '{topic}.redacted' \
  -X producer.compression.type=zstd -X consumer.fetch.min.bytes=1 \
  --exactly-once --transactional-id t --grace-period 1.5 \
  --commit-interval 0.1 --max-in-flight 10 --partitioner key \
  --redact-keys --redact-headers --no-metrics-listen --log-level debug
args $target kafka-errors kafka --brokers b:1 --group g --input-topic a \
  --output-topic a -X group.id=x --connect-timeout 0

# checkpoint: the contents of a checkpoint file.
target=checkpoint
seed $target one '{"version":1,"files":[{"path":"/var/log/app.log","dev":7,"ino":42,"birth_ns":1,"offset":1024}]}'
seed $target empty '{"version":1,"files":[]}'
seed $target pretty '{\n  "version": 1,\n  "files": [\n    {\n      "path": "a.log",\n      "dev": 1,\n      "ino": 2,\n      "offset": 0\n    }\n  ]\n}\n'
seed $target other-version '{"version":2,"files":[]}'

# kafka_settings: a selector byte (even: a -X setting; odd: an output
# topic template, then input topics, separated by NUL bytes) and the text.
target=kafka_settings
seed $target property '\0compression.type=zstd'
seed $target scoped '\2consumer.fetch.min.bytes=1'
seed $target reserved '\4producer.transactional.id=t'
seed $target empty-name '\6producer.=x'
seed $target template '\1{topic}.redacted\0logs\0^logs-.*'
seed $target fixed '\3clean\0clean'

# follow_pattern: a path or glob.
target=follow_pattern
seed $target glob '/var/log/app/*.log'
seed $target class 'logs/[ab]?.log'
seed $target plain '/var/log/app.log'
seed $target directory 'dir/'
seed $target recursive 'a/**/b.log'

printf 'seeds.sh: wrote the seeds of every target to fuzz/%s\n' "$CORPUS" >&2
