#!/usr/bin/env bash
# Times cfscrub against cat (the ceiling), sed -E, perl -pe and
# rg --passthru -r on generated corpora, through pipes and from a cached
# file, and prints the results as markdown for BENCHMARKS.md.
#
# Usage: benches/compare.sh [--quick] [OPTION]...   (--help lists them)
#
# For each corpus it writes the file in a temporary folder and runs every
# tool once, to check what it replaced and to read its peak RSS. Then it
# times all commands in rounds. Each round is one hyperfine call that runs
# every command once, so the tools alternate and drift on a shared machine
# hits them alike. A ratio is the median over the rounds of the ceiling's time
# divided by the tool's time in the same round. The file is deleted before
# the next corpus is written.
set -euo pipefail

cd "$(dirname "$0")/.."

# The regular expression that the general tools use: the prefixed formats
# with their body and up to 8 checksum digits, and Origin CA keys. The
# legacy formats are left out because they need a keyword earlier on the
# same line, so these tools find no legacy credential.
# The common "cf" is written once: spelled as (cfut_|cfat_|cfk_) the same
# expression made perl -pe 10 times slower (64 MiB of per_64k, 2.69 s
# against 0.26 s), and sed and rg no faster.
readonly REGEX='cf(ut|at|k)_[A-Za-z0-9]{40}[0-9A-Fa-f]{0,8}|v1\.0-[0-9a-f]{24}-[0-9a-f]{146}'
readonly ALL_CORPORA=clean,per_64k,per_1k,adversarial,cloudflare_lines,no_newline
readonly ALL_TOOLS=cat,cfscrub,sed,perl,rg
# The line-oriented tools hold a whole line in memory, which on this
# corpus is the whole input.
readonly NO_NEWLINE_TOOLS=cat,cfscrub

size_mib=1024
scale_mib=
rounds=5
corpora=$ALL_CORPORA
tools=$ALL_TOOLS
# Other cfscrub binaries to time beside the one built here, by name.
declare -A variants=()
# Extra arguments of the cfscrub built here, by the name of the variant.
declare -A variant_args=()
# Size of the corpus streamed from the generator through cfscrub, or
# empty for no such run.
huge_mib=
scaling=per_64k,adversarial
parent=${TMPDIR:-/tmp}
keep=false
report=

usage() {
  cat <<EOF
Usage: benches/compare.sh [OPTION]...

Builds cfscrub, writes each corpus in a temporary folder, and times cat,
cfscrub, sed -E, perl -pe and rg --passthru -r on it, through pipes
(cat FILE | TOOL > /dev/null) and from a cached file (TOOL < FILE >
/dev/null). Prints markdown tables: throughput, ratio to cat, peak RSS,
the targets, a scaling check and the load average during each run.

Options:
  --quick           development run: 64 MiB corpora, 256 MiB for the
                    larger scaling corpus, 3 rounds
  --size MIB        size of each corpus (default: 1024)
  --scale-size MIB  size of the larger corpus of the scaling check
                    (default: 4 times --size)
  --rounds N        timed rounds per corpus (default: 5)
  --corpora LIST    comma-separated corpora, or "none" (default: all of
                    $ALL_CORPORA)
  --tools LIST      comma-separated tools (default: $ALL_TOOLS);
                    cat is always timed, as the ceiling
  --variant NAME=PATH
                    also time the cfscrub binary at PATH as tool NAME,
                    which starts with "cfscrub-" (repeatable), to
                    compare builds of two commits in the same rounds
  --variant-args NAME='ARGS'
                    also time the cfscrub built here with the extra
                    shell words ARGS as tool NAME, which starts with
                    "cfscrub-" (repeatable), to measure what an option
                    costs, such as
                    cfscrub-textfile='--metrics-textfile /tmp/x.prom'
  --huge MIB        also stream MIB of per_64k from the generator
                    through a pipe into cat and cfscrub, without storing
                    it, beside --size of it, in the same rounds
                    (default: no such run)
  --scaling LIST    corpora of the scaling check, or "none"
                    (default: $scaling)
  --dir DIR         folder in which the temporary folder is made
                    (default: \$TMPDIR or /tmp)
  --keep            keep the temporary folder and its corpora
  --report FILE     also write the markdown to FILE
  -h, --help        print this help

Needs cargo, hyperfine, rg and GNU time (/usr/bin/time), which
scripts/setup-test-deps.sh installs, and perl and GNU sed.
EOF
}

log() {
  printf 'compare.sh: %s\n' "$*" >&2
}

die() {
  printf 'compare.sh: error: %s\n' "$*" >&2
  exit 2
}

require_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value; see --help"
}

require_count() {
  [[ "$2" =~ ^[1-9][0-9]*$ ]] ||
    die "invalid $1 '$2': expected a positive whole number"
}

add_variant() {
  local name=${1%%=*} path=${1#*=}
  [[ "$1" == *=* && "$name" =~ ^cfscrub-[a-z0-9_-]+$ ]] ||
    die "invalid --variant '$1': expected NAME=PATH with NAME like cfscrub-main"
  [[ -x "$path" ]] || die "invalid --variant '$1': $path is not an executable"
  check_variant_name "$name"
  variants[$name]=$(realpath "$path")
}

add_variant_args() {
  local name=${1%%=*} words=${1#*=}
  [[ "$1" == *=* && "$name" =~ ^cfscrub-[a-z0-9_-]+$ && -n "$words" ]] ||
    die "invalid --variant-args '$1': expected NAME='ARGS' with NAME like cfscrub-textfile"
  check_variant_name "$name"
  variant_args[$name]=$words
}

check_variant_name() {
  [[ "$1" != cfscrub-legacy-off && -z "${variants[$1]:-}" &&
    -z "${variant_args[$1]:-}" ]] ||
    die "invalid variant name '$1': another tool has that name; choose another"
}

while (($# > 0)); do
  case "$1" in
    --quick) size_mib=64; scale_mib=256; rounds=3; shift ;;
    --size) require_value "$@"; size_mib=$2; shift 2 ;;
    --scale-size) require_value "$@"; scale_mib=$2; shift 2 ;;
    --rounds) require_value "$@"; rounds=$2; shift 2 ;;
    --corpora) require_value "$@"; corpora=$2; shift 2 ;;
    --tools) require_value "$@"; tools=$2; shift 2 ;;
    --scaling) require_value "$@"; scaling=$2; shift 2 ;;
    --variant) require_value "$@"; add_variant "$2"; shift 2 ;;
    --variant-args) require_value "$@"; add_variant_args "$2"; shift 2 ;;
    --huge) require_value "$@"; huge_mib=$2; shift 2 ;;
    --dir) require_value "$@"; parent=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    --report) require_value "$@"; report=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1'; see --help" ;;
  esac
done
scale_mib=${scale_mib:-$((size_mib * 4))}
require_count --size "$size_mib"
require_count --scale-size "$scale_mib"
require_count --rounds "$rounds"
[[ -z "$huge_mib" ]] || require_count --huge "$huge_mib"
[[ "$corpora" == none ]] && corpora=
[[ "$scaling" == none ]] && scaling=

in_list() {
  [[ ",$2," == *",$1,"* ]]
}

for corpus in ${corpora//,/ } ${scaling//,/ }; do
  in_list "$corpus" "$ALL_CORPORA" ||
    die "invalid corpus '$corpus': expected one of $ALL_CORPORA"
done
for tool in ${tools//,/ }; do
  in_list "$tool" "$ALL_TOOLS" ||
    die "invalid tool '$tool': expected one of $ALL_TOOLS"
done
in_list cat "$tools" || tools="cat,$tools"
for name in "${!variants[@]}" "${!variant_args[@]}"; do
  tools+=",$name"
done

check_programs() {
  local program
  for program in cargo hyperfine rg perl sed cat tr df; do
    command -v "$program" >/dev/null 2>&1 ||
      die "'$program' not found on PATH; scripts/setup-test-deps.sh installs hyperfine and rg"
  done
  /usr/bin/time -f %M -o /dev/null true 2>/dev/null ||
    die "GNU time not found at /usr/bin/time; scripts/setup-test-deps.sh installs it (Debian package time)"
  sed --version 2>/dev/null | grep -q GNU ||
    die "sed is not GNU sed; the comparison expects GNU sed 4"
}

# Fails unless DIR has room for the largest set of corpora on disk at once:
# one corpus, or the two of the scaling check.
check_disk() {
  local need_mib=$size_mib
  if [[ -n "$scaling" ]]; then
    need_mib=$((size_mib + scale_mib))
  fi
  need_mib=$((need_mib + 512))
  local free_kib
  free_kib=$(df -Pk "$1" | awk 'NR == 2 { print $4 }')
  ((free_kib / 1024 >= need_mib)) ||
    die "not enough disk in $1: $((free_kib / 1024)) MiB free, $need_mib MiB needed; pass --dir or smaller sizes"
  local available_kib
  available_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  if ((available_kib / 1024 < need_mib)); then
    log "warning: $((available_kib / 1024)) MiB of memory available, less than the $need_mib MiB of corpora; reads may hit the disk and the file setting then times the disk"
  fi
}

load_average() {
  cut -d' ' -f1-3 /proc/loadavg
}

check_programs
target_dir=${CARGO_TARGET_DIR:-target}
log "building the release binary and the corpus generator"
cargo build --release --locked --bin cfscrub --example bench-corpus >&2
bin=$(realpath "$target_dir/release/cfscrub")
generate=$(realpath "$target_dir/release/examples/bench-corpus")

mkdir -p "$parent"
check_disk "$parent"
work=$(mktemp -d "$parent/cfscrub-compare.XXXXXX")
cleanup() {
  if [[ "$keep" == true ]]; then
    log "kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
log "working in $work"

# Byte semantics for every tool, and the same in every locale.
export LC_ALL=C

# Prints the command that runs TOOL as a filter.
tool_command() {
  case "$1" in
    cat) printf 'cat' ;;
    cfscrub) printf '%q' "$bin" ;;
    cfscrub-legacy-off)
      printf '%q --skip-kinds legacy_token,legacy_global_key' "$bin" ;;
    sed) printf "sed -E 's/%s/[REDACTED]/g'" "$REGEX" ;;
    perl) printf "perl -pe 's/%s/[REDACTED]/g'" "$REGEX" ;;
    rg) printf "rg --no-config --passthru -r '[REDACTED]' '%s'" "$REGEX" ;;
    *)
      if [[ -n "${variant_args[$1]:-}" ]]; then
        printf '%q %s' "$bin" "${variant_args[$1]}"
      else
        printf '%q' "${variants[$1]}"
      fi
      ;;
  esac
}

# Prints the tools timed on CORPUS, cat first.
tools_for() {
  local tool list=cat
  for tool in ${tools//,/ }; do
    [[ "$tool" == cat ]] && continue
    if [[ "$1" == no_newline && "$tool" != cfscrub-* ]] &&
      ! in_list "$tool" "$NO_NEWLINE_TOOLS"; then
      continue
    fi
    list+=" $tool"
    # Legacy detection off, to show what it costs on logs without a
    # keyword.
    [[ "$tool" == cfscrub && "$1" == clean ]] && list+=" cfscrub-legacy-off"
  done
  printf '%s\n' "$list"
}

# Counts the bytes of stdin and the redactions in it, as "BYTES COUNT".
# Every tool's replacement starts with the 9 bytes "[REDACTED". Each read
# is searched after the last 8 bytes of the one before, so a marker cut by
# a read boundary is found once and no marker is counted twice.
count_output() {
  perl -e '
    binmode STDIN;
    local $/ = \(1 << 20);
    my ($bytes, $count, $tail) = (0, 0, "");
    while (my $read = <STDIN>) {
      $bytes += length $read;
      my $text = $tail . $read;
      my $at = 0;
      while (($at = index($text, "[REDACTED", $at)) >= 0) {
        $count++;
        $at += 9;
      }
      $tail = length($text) > 8 ? substr($text, -8) : $text;
    }
    print "$bytes $count\n";
  '
}

# Runs TOOL once on FILE, checks its exit status, and appends its peak RSS
# and what it replaced to runs.tsv.
run_once() {
  local corpus=$1 tool=$2 file=$3 command
  command=$(tool_command "$tool")
  local status counted
  set +e
  counted=$(/usr/bin/time -f %M -o "$work/rss" sh -c "exec $command" <"$file" |
    count_output)
  status=${PIPESTATUS[0]}
  set -e
  # rg exits 1 when it found nothing to replace.
  if ((status != 0)) && ! [[ "$tool" == rg && "$status" == 1 ]]; then
    die "$tool failed on $corpus with exit status $status: $command < $file"
  fi
  local rss_kib
  rss_kib=$(tail -n 1 "$work/rss")
  printf '%s\t%s\t%s\t%s\n' "$corpus" "$tool" "$rss_kib" "${counted/ /$'\t'}" \
    >>"$work/runs.tsv"
}

# Names and commands of the next rounds, as NAME=CORPUS/SETTING/TOOL.
names=()
commands=()

# Adds the command that runs TOOL on FILE in SETTING to the next rounds.
add_command() {
  local corpus=$1 setting=$2 tool=$3 file=$4 command
  command=$(tool_command "$tool")
  if [[ "$setting" == pipes ]]; then
    command="cat $file | $command > /dev/null"
  else
    command="$command < $file > /dev/null"
  fi
  names+=("$corpus/$setting/$tool")
  commands+=("$command")
}

# Times the added commands in --rounds rounds, appends the times to
# times.tsv, and clears the list. Each round is one hyperfine call that
# runs every command once, in the order they were added.
time_rounds() {
  local label=$1 i round
  local -a args=()
  for i in "${!names[@]}"; do
    args+=(--command-name "${names[i]}" "${commands[i]}")
  done
  for ((round = 1; round <= rounds; round++)); do
    hyperfine --runs 1 --ignore-failure --style none \
      --export-csv "$work/round.csv" "${args[@]}" >/dev/null 2>&1 ||
      die "hyperfine failed on $label; run one of its commands by hand with --keep"
    awk -F, -v round="$round" 'NR > 1 {
      split($1, name, "/")
      printf "%s\t%d\t%s\t%s\t%s\n", name[1], round, name[2], name[3], $2
    }' "$work/round.csv" >>"$work/times.tsv"
  done
  names=()
  commands=()
}

# Writes corpus ID of SIZE_MIB at FILE and appends its counts to
# corpora.tsv under the name NAME.
make_corpus() {
  local name=$1 id=$2 mib=$3 file=$4 counts
  counts=$("$generate" "$id" "$((mib << 20))" "$file") ||
    die "bench-corpus failed for $id"
  add_counts "$name" "$id" "$counts"
  # Reads the file once so that every timed run reads it from the cache.
  cat "$file" >/dev/null
}

# Appends the counts that bench-corpus printed for corpus ID, COUNTS, to
# corpora.tsv under the name NAME.
add_counts() {
  local name=$1 id=$2 counts=$3
  local bytes='' planted='' near_misses='' field
  for field in $counts; do
    case "$field" in
      bytes=*) bytes=${field#*=} ;;
      planted=*) planted=${field#*=} ;;
      near_misses=*) near_misses=${field#*=} ;;
    esac
  done
  [[ -n "$bytes" && -n "$planted" && -n "$near_misses" ]] ||
    die "bench-corpus printed '$counts', expected bytes=N planted=N near_misses=N"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$id" "$bytes" "$planted" \
    "$near_misses" >>"$work/corpora.tsv"
}

# Fails unless each tool replaced exactly what was planted. On the
# cloudflare_lines corpus cfscrub may replace more, because it also finds
# legacy credentials, which the others cannot.
check_counts() {
  local corpus=$1
  awk -F'\t' -v corpus="$corpus" '
    FILENAME ~ /corpora/ && $1 == corpus { bytes = $3; planted = $4 }
    FILENAME ~ /runs/ && $1 == corpus {
      tool = $2; out = $4; count = $5
      bad = ""
      if (tool == "cat" && (count != 0 || out != bytes)) {
        bad = "cat changed the input"
      } else if (tool ~ /^cfscrub/ && corpus ~ /^cloudflare_lines/) {
        if (count < planted) bad = "replaced fewer than the planted credentials"
      } else if (tool != "cat" && count != planted) {
        bad = "did not replace exactly the planted credentials"
      } else if (count == 0 && out != bytes) {
        bad = "changed the input without replacing anything"
      }
      if (bad != "") {
        printf "%s on %s: %s (%d replaced, %d planted, %d of %d bytes out)\n",
          tool, corpus, bad, count, planted, out, bytes
        failed = 1
      }
    }
    END { exit failed }
  ' "$work/corpora.tsv" "$work/runs.tsv" >&2 ||
    die "a tool did not redact as expected on $corpus (see above)"
}

# Generates, checks and times one corpus, then deletes it.
bench_corpus() {
  local corpus=$1 file="$work/$1.log"
  log "corpus $corpus: writing $size_mib MiB"
  make_corpus "$corpus" "$corpus" "$size_mib" "$file"
  local -a list
  read -r -a list <<<"$(tools_for "$corpus")"
  local tool
  for tool in "${list[@]}"; do
    log "corpus $corpus: checking $tool"
    run_once "$corpus" "$tool" "$file"
  done
  check_counts "$corpus"
  local before start
  before=$(load_average)
  start=$SECONDS
  log "corpus $corpus: timing ${list[*]} in $rounds rounds"
  local setting
  for setting in pipes file; do
    for tool in "${list[@]}"; do
      add_command "$corpus" "$setting" "$tool" "$file"
    done
  done
  time_rounds "corpus $corpus"
  printf '%s\t%s\t%s\t%s\n' "$corpus" "$before" "$(load_average)" \
    "$((SECONDS - start))" >>"$work/loads.tsv"
  rm -f "$file"
}

# Times cat and cfscrub on CORPUS at --size and at --scale-size, in the
# same rounds.
bench_scaling() {
  local id=$1
  local small="$id@$size_mib" large="$id@$scale_mib"
  local small_file="$work/$id-small.log" large_file="$work/$id-large.log"
  log "scaling $id: writing $size_mib MiB and $scale_mib MiB"
  make_corpus "$small" "$id" "$size_mib" "$small_file"
  make_corpus "$large" "$id" "$scale_mib" "$large_file"
  run_once "$large" cfscrub "$large_file"
  check_counts "$large"
  local before start
  before=$(load_average)
  start=$SECONDS
  log "scaling $id: timing in $rounds rounds"
  local setting tool
  for setting in pipes file; do
    for tool in cat cfscrub; do
      add_command "$small" "$setting" "$tool" "$small_file"
      add_command "$large" "$setting" "$tool" "$large_file"
    done
  done
  time_rounds "the scaling check of $id"
  printf '%s\t%s\t%s\t%s\n' "scaling $id" "$before" "$(load_average)" \
    "$((SECONDS - start))" >>"$work/loads.tsv"
  printf '%s\n' "scaling:$id" >>"$work/scaling.txt"
  rm -f "$small_file" "$large_file"
}

# Streams per_64k from the generator through a pipe, --size and --huge
# MiB of it, into cat and into cfscrub, in the same rounds. Nothing is
# stored, so the large run needs no disk and no page cache. A first run
# of the large size checks what cfscrub replaced and reads its peak RSS.
bench_huge() {
  local id=per_64k
  local small="$id-stream@$size_mib" large="$id-stream@$huge_mib"
  local small_bytes=$((size_mib << 20)) large_bytes=$((huge_mib << 20))
  local counts
  counts=$("$generate" "$id" "$small_bytes" - 2>&1 >/dev/null) ||
    die "bench-corpus failed for $id: $counts"
  add_counts "$small" "$id" "$counts"

  log "streaming $id: checking cfscrub on $huge_mib MiB"
  local replaced
  local -a statuses
  set +e
  replaced=$("$generate" "$id" "$large_bytes" - 2>"$work/counts" |
    /usr/bin/time -f %M -o "$work/rss" "$bin" |
    grep -o -F '[REDACTED' | wc -l)
  statuses=("${PIPESTATUS[@]}")
  set -e
  ((statuses[0] == 0)) ||
    die "bench-corpus failed for $id: $(cat "$work/counts")"
  ((statuses[1] == 0)) ||
    die "cfscrub failed on $huge_mib MiB of $id from a pipe with exit status ${statuses[1]}"
  add_counts "$large" "$id" "$(cat "$work/counts")"
  local planted
  planted=$(awk -F'\t' -v name="$large" '$1 == name { print $4 }' \
    "$work/corpora.tsv")
  ((replaced == planted)) ||
    die "cfscrub replaced $replaced credentials in $huge_mib MiB of $id from a pipe, but $planted were planted"
  printf '%s\t%s\t%s\t%s\t%s\n' "$large" cfscrub "$(tail -n 1 "$work/rss")" \
    0 "$replaced" >>"$work/runs.tsv"

  local before start
  before=$(load_average)
  start=$SECONDS
  log "streaming $id: timing $size_mib MiB and $huge_mib MiB in $rounds rounds"
  local name bytes tool
  for name in "$small" "$large"; do
    bytes=$small_bytes
    [[ "$name" == "$large" ]] && bytes=$large_bytes
    for tool in cat cfscrub; do
      names+=("$name/stream/$tool")
      commands+=("$(printf '%q' "$generate") $id $bytes - 2>/dev/null | $(tool_command "$tool") > /dev/null")
    done
  done
  time_rounds "the streaming run of $id"
  printf '%s\t%s\t%s\t%s\n' "stream $id" "$before" "$(load_average)" \
    "$((SECONDS - start))" >>"$work/loads.tsv"
  printf '%s\n' "$id" >>"$work/huge.txt"
}

machine_summary() {
  local model cpus kernel memory
  model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
  cpus=$(nproc)
  kernel=$(uname -sr)
  memory=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"
  printf -- '- machine: %s, %s CPUs, %s, %s of memory\n' \
    "${model:-unknown CPU}" "$cpus" "$kernel" "$memory"
  printf -- '- cfscrub %s, %s\n' "$commit" "$(rustc --version 2>/dev/null)"
  printf -- '- tools: %s; %s; perl %s; %s; %s\n' \
    "$(cat --version | head -n 1)" "$(sed --version | head -n 1)" \
    "$(perl -e 'print substr($^V, 1)')" "$(rg --version | head -n 1)" \
    "$(hyperfine --version)"
  printf -- '- corpora of %s MiB, scaling pair %s and %s MiB, %s rounds, LC_ALL=C\n' \
    "$size_mib" "$size_mib" "$scale_mib" "$rounds"
  printf -- '- date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
}

: >"$work/times.tsv"
: >"$work/runs.tsv"
: >"$work/loads.tsv"
: >"$work/corpora.tsv"
for tool in ${tools//,/ } $(in_list cfscrub "$tools" && echo cfscrub-legacy-off); do
  printf '%s\t%s\n' "$tool" "$(tool_command "$tool")" |
    sed "s|$bin|target/release/cfscrub|"
done >"$work/tools.tsv"
: >"$work/scaling.txt"
: >"$work/huge.txt"
machine_summary >"$work/machine.md"
for corpus in ${corpora//,/ }; do
  bench_corpus "$corpus"
done
for corpus in ${scaling//,/ }; do
  bench_scaling "$corpus"
done
[[ -z "$huge_mib" ]] || bench_huge

perl benches/compare-report.pl "$work" >"$work/report.md"
[[ -n "$report" ]] && cp "$work/report.md" "$report"
cat "$work/report.md"
