#!/usr/bin/env bash
# Runs a single-node Apache Kafka broker on loopback for the test suite.
#
# Usage: scripts/kafka.sh start | stop | restart | kill | status | create-topic NAME PARTITIONS
#
# The broker runs in KRaft mode as combined broker and controller (node.id=1).
# Its jars come from Maven Central through mvn on the first start and are cached
# outside the repository, so later starts work offline.
#
# Environment (defaults in brackets):
#   KAFKA_VERSION          org.apache.kafka:kafka_2.13 version [4.4.0]
#   KAFKA_PORT             client listener port on 127.0.0.1 [9092]
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port on 127.0.0.1 [KAFKA_PORT + 1]
#   KAFKA_SASL_PORT        SASL_PLAINTEXT listener port on 127.0.0.1, PLAIN mechanism,
#                          one user (see SASL_USER below) [KAFKA_PORT + 2]
#   KAFKA_HEAP_OPTS        broker JVM heap options [-Xms256m -Xmx1g]
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to accept requests [60]
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL [30]
#   KAFKA_RUN_DIR          config, logs, data and pid file of the running broker
#                          [${TMPDIR:-/tmp}/cfscrub-kafka-KAFKA_PORT]
#   CFSCRUB_CACHE          cache root for the jars [$HOME/.cache/cfscrub]
#   JAVA_HOME              Java 17+ installation; `java` on PATH when unset
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-}" # default set by validate_ports
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-}"             # default set by validate_ports
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_RUN_DIR="${KAFKA_RUN_DIR:-${TMPDIR:-/tmp}/cfscrub-kafka-${KAFKA_PORT}}"
CFSCRUB_CACHE="${CFSCRUB_CACHE:-$HOME/.cache/cfscrub}"

LIBS_DIR="${CFSCRUB_CACHE}/kafka-${KAFKA_VERSION}/libs"
PID_FILE="${KAFKA_RUN_DIR}/broker.pid"
BROKER_LOG="${KAFKA_RUN_DIR}/logs/server.log"
JAVA="${JAVA_HOME:+${JAVA_HOME}/bin/}java"
FETCH_DIR="" # temporary Maven project of fetch_jars, removed on exit
# File that marks a directory as a run directory made by this script, so that
# a mistyped KAFKA_RUN_DIR such as $HOME is never deleted.
RUN_DIR_MARKER="${KAFKA_RUN_DIR}/.cfscrub-kafka-run-dir"

# The one SASL/PLAIN user of the SASL listener. It exists only in this test
# broker, so that tests can check what a client does with right and wrong
# passwords.
SASL_USER=cfscrub-test
SASL_PASSWORD=cfscrub-test-password

# Main classes, as found in the kafka_2.13 and kafka-tools jars of Kafka 4.4.0.
BROKER_MAIN=kafka.Kafka
STORAGE_TOOL_MAIN=kafka.tools.StorageTool
TOPIC_COMMAND_MAIN=org.apache.kafka.tools.TopicCommand

# JVM options for the short-lived admin tools. The C1-only compiler and serial GC
# start faster: `TopicCommand --list` took 0.87 s with them and 1.05 s without,
# measured once on a 2-core machine.
TOOL_JVM_OPTS=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m -Djava.awt.headless=true)

log() {
  printf 'kafka.sh: %s\n' "$*" >&2
}

die() {
  printf 'kafka.sh: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat >&2 <<'EOF'
Usage: scripts/kafka.sh start | stop | restart | kill | status | create-topic NAME PARTITIONS

  start         download the jars if not cached, then start a fresh broker
  stop          stop the broker and delete its run directory
  restart       stop the broker and start it again, keeping its topics and data
  kill          kill the broker with SIGKILL, as a crash would, keeping its data
  status        print whether the broker runs; exit 0 if it does, 3 if not
  create-topic  create topic NAME with PARTITIONS partitions (replication factor 1)
EOF
}

require_positive_integer() {
  local name="$1" value="$2"
  [[ "$value" =~ ^[1-9][0-9]*$ ]] ||
    die "$name must be a positive integer, got '$value'"
}

require_command() {
  command -v "$1" >/dev/null 2>&1 ||
    die "'$1' not found on PATH; run scripts/setup-test-deps.sh"
}

require_java_17() {
  require_command "$JAVA"
  local output version="" major
  output="$("$JAVA" -version 2>&1)" || true
  # `java -version` prints e.g.: openjdk version "17.0.15" 2025-04-15
  if [[ "$output" =~ \ version\ \"([^\"]+)\" ]]; then
    version="${BASH_REMATCH[1]}"
  fi
  major="${version%%.*}"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] ||
    die "Kafka ${KAFKA_VERSION} needs Java 17 or newer, but $JAVA is version '${version:-unknown}'; set JAVA_HOME to a Java 17+ installation"
}

# Succeeds when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the pid of the running broker, or fails if none runs. The command line
# check guards against a stale pid file whose pid the kernel has reused.
running_broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  process_alive "$pid" || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *" $BROKER_MAIN "* ]] || return 1
  printf '%s\n' "$pid"
}

# Succeeds while PID runs. A zombie counts as stopped, because it has released
# its ports and only waits for its parent to reap it.
process_alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z* ]]
}

# Writes a Maven project whose only purpose is to resolve the broker, the admin
# tools and their runtime dependencies.
write_fetch_pom() {
  local pom="$1"
  cat >"$pom" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cfscrub</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
}

# Prints the version in a jar file name such as log4j-core-2.25.5.jar.
jar_version() {
  local dir="$1" artifact="$2" jars jar
  jars=("$dir/${artifact}"-[0-9]*.jar)
  [[ -f "${jars[0]}" ]] || die "no ${artifact} jar among the dependencies of kafka_2.13 ${KAFKA_VERSION} in $dir"
  jar="${jars[0]##*/}"
  jar="${jar#"${artifact}-"}"
  printf '%s\n' "${jar%.jar}"
}

# Copies the SLF4J binding for log4j 2 into DIR. The runtime dependencies of
# kafka_2.13 include slf4j-api and log4j-core but no binding between them, and
# without one SLF4J drops every log line of the broker. The binding must match
# both the SLF4J line (1.x or 2.x) and the log4j-core version.
fetch_slf4j_binding() {
  local dir="$1" pom_dir="$2" log4j_version slf4j_version binding
  log4j_version="$(jar_version "$dir" log4j-core)"
  slf4j_version="$(jar_version "$dir" slf4j-api)"
  if [[ "$slf4j_version" == 1.* ]]; then
    binding=log4j-slf4j-impl
  else
    binding=log4j-slf4j2-impl
  fi
  run_mvn "$pom_dir" dependency:copy \
    "-Dartifact=org.apache.logging.log4j:${binding}:${log4j_version}" \
    "-DoutputDirectory=$dir" ||
    die "mvn failed to fetch org.apache.logging.log4j:${binding}:${log4j_version} (output above)"
}

# Runs mvn in POM_DIR and prints its output only if it fails. Maven 3.8 prints
# stray colour escape codes even with -q and -B.
run_mvn() {
  local pom_dir="$1" output
  shift
  if ! output="$(cd "$pom_dir" && mvn -B -q "$@" 2>&1)"; then
    printf '%s\n' "$output" >&2
    return 1
  fi
}

# Downloads the jars into LIBS_DIR unless they are cached. The jars land in a
# temporary directory next to LIBS_DIR first and are moved into place at the
# end, so a failed or interrupted download leaves no partial cache.
fetch_jars() {
  if [[ -f "$LIBS_DIR/kafka_2.13-${KAFKA_VERSION}.jar" ]]; then
    return 0
  fi
  require_command mvn
  log "downloading Kafka ${KAFKA_VERSION} jars with mvn into $LIBS_DIR (first start only)"

  mkdir -p "$(dirname "$LIBS_DIR")"
  FETCH_DIR="$(mktemp -d "$(dirname "$LIBS_DIR")/fetch.XXXXXX")"
  trap 'rm -rf "$FETCH_DIR"' EXIT
  write_fetch_pom "$FETCH_DIR/pom.xml"

  run_mvn "$FETCH_DIR" dependency:copy-dependencies \
    -DincludeScope=runtime "-DoutputDirectory=$FETCH_DIR/libs" ||
    die "mvn failed to fetch org.apache.kafka:kafka_2.13:${KAFKA_VERSION} (output above); check that this version exists and that Maven Central is reachable"
  fetch_slf4j_binding "$FETCH_DIR/libs" "$FETCH_DIR"

  rm -rf "$LIBS_DIR"
  mv "$FETCH_DIR/libs" "$LIBS_DIR"
}

write_server_properties() {
  cat >"$KAFKA_RUN_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT},SASL_PLAINTEXT://127.0.0.1:${KAFKA_SASL_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT},SASL_PLAINTEXT://127.0.0.1:${KAFKA_SASL_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT

# SASL/PLAIN on its own listener, for tests of authentication failures.
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${SASL_USER}="${SASL_PASSWORD}";
log.dirs=${KAFKA_RUN_DIR}/data

# Tests create every topic they use, so a typo in a topic name fails loudly.
auto.create.topics.enable=false
num.partitions=1
group.initial.rebalance.delay.ms=0

# Replication factor 1 everywhere, because there is one broker. The internal
# topics get one partition so that the first consumer group or transaction does
# not wait for 50 partitions to be created.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
}

write_log4j_configs() {
  cat >"$KAFKA_RUN_DIR/log4j2.properties" <<EOF
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${BROKER_LOG}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF
  # The admin tools print only warnings and errors, on stderr.
  cat >"$KAFKA_RUN_DIR/tools-log4j2.properties" <<'EOF'
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
EOF
}

# Prints a random cluster id: 16 random bytes in URL-safe base64 without padding,
# the form that Kafka's Uuid.toString produces. Generating it here saves one JVM
# start of `StorageTool random-uuid`. Like Uuid.randomUuid in kafka-clients 4.4.0,
# it skips ids that contain '-', because a command line parser could read such
# an id as an option.
random_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    [[ "$id" == *-* ]] || break
  done
  printf '%s\n' "$id"
}

# Runs a Kafka admin tool class with the tool logging configuration.
run_tool() {
  local main_class="$1"
  shift
  "$JAVA" "${TOOL_JVM_OPTS[@]}" \
    "-Dlog4j2.configurationFile=$KAFKA_RUN_DIR/tools-log4j2.properties" \
    -cp "$LIBS_DIR/*" "$main_class" "$@"
}

format_storage() {
  local output
  if ! output="$(run_tool "$STORAGE_TOOL_MAIN" format --standalone \
    --cluster-id "$(random_cluster_id)" \
    --config "$KAFKA_RUN_DIR/server.properties" 2>&1)"; then
    printf '%s\n' "$output" >&2
    die "formatting the KRaft storage in $KAFKA_RUN_DIR/data failed (output above)"
  fi
}

# Starts the broker in its own session, so that Ctrl-C in the calling terminal
# or the end of the calling process group does not stop it. The inner shell
# writes its own pid and then execs java, so the pid file is right even when
# setsid has to fork.
launch_broker() {
  local heap_opts
  read -r -a heap_opts <<<"$KAFKA_HEAP_OPTS"
  # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner shell.
  setsid bash -c 'printf "%s\n" "$$" >"$0" && exec "$@"' "$PID_FILE" \
    "$JAVA" "${heap_opts[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$KAFKA_RUN_DIR/log4j2.properties" \
    "-Dkafka.logs.dir=$KAFKA_RUN_DIR/logs" \
    -cp "$LIBS_DIR/*" "$BROKER_MAIN" "$KAFKA_RUN_DIR/server.properties" \
    </dev/null >"$KAFKA_RUN_DIR/logs/stdout.log" 2>&1 &

  local deadline=$((SECONDS + 5))
  until [[ -s "$PID_FILE" ]]; do
    ((SECONDS < deadline)) || fail_start "the broker process wrote no pid file to $PID_FILE within 5s"
    sleep 0.05
  done
}

print_broker_log_tail() {
  local file
  for file in "$BROKER_LOG" "$KAFKA_RUN_DIR/logs/stdout.log"; do
    if [[ -s "$file" ]]; then
      printf -- '--- last 30 lines of %s ---\n' "$file" >&2
      tail -n 30 "$file" >&2
    fi
  done
}

# Fails the start: stops a broker that is still starting and keeps the run
# directory so that its logs can be read.
fail_start() {
  local pid
  if pid="$(running_broker_pid)"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  print_broker_log_tail
  die "$1; logs are kept in $KAFKA_RUN_DIR/logs until the next start or stop"
}

broker_accepts_requests() {
  # -m is kcat's metadata request timeout in seconds, and `timeout` bounds the
  # whole call in case the connection itself hangs.
  timeout 5 kcat -b "127.0.0.1:${KAFKA_PORT}" -L -m 2 >/dev/null 2>&1
}

wait_until_ready() {
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if broker_accepts_requests; then
      return 0
    fi
    running_broker_pid >/dev/null ||
      fail_start "the Kafka broker exited during start-up"
    sleep 0.5
  done
  fail_start "timed out after ${KAFKA_START_TIMEOUT}s waiting for the Kafka broker on 127.0.0.1:${KAFKA_PORT}; raise KAFKA_START_TIMEOUT if the machine is slow"
}

# Removes the run directory of a broker that no longer runs, or fails if it runs.
clear_previous_run() {
  local pid
  if pid="$(running_broker_pid)"; then
    die "a Kafka broker already runs on 127.0.0.1:${KAFKA_PORT} (pid $pid); run 'scripts/kafka.sh stop' first"
  fi
  [[ -e "$KAFKA_RUN_DIR" ]] || return 0
  require_own_run_dir
  log "removing run directory $KAFKA_RUN_DIR left by an earlier broker that is no longer running"
  rm -rf "$KAFKA_RUN_DIR"
}

require_own_run_dir() {
  [[ -f "$RUN_DIR_MARKER" ]] ||
    die "KAFKA_RUN_DIR $KAFKA_RUN_DIR exists but was not created by kafka.sh (no $RUN_DIR_MARKER); remove it by hand or set KAFKA_RUN_DIR to a new path"
}

require_free_port() {
  local name="$1" port="$2"
  if port_in_use "$port"; then
    die "port $port on 127.0.0.1 ($name) is already in use; stop the process listening on it or set $name to a free port"
  fi
}

# Validates KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_SASL_PORT, and defaults
# the controller port to KAFKA_PORT + 1 and the SASL port to KAFKA_PORT + 2.
validate_ports() {
  require_positive_integer KAFKA_PORT "$KAFKA_PORT"
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
  KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"
  local name
  for name in KAFKA_CONTROLLER_PORT KAFKA_SASL_PORT; do
    require_positive_integer "$name" "${!name}"
  done
  for name in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_SASL_PORT; do
    ((${!name} <= 65535)) || die "$name must be at most 65535, got ${!name}"
  done
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" &&
    "$KAFKA_PORT" != "$KAFKA_SASL_PORT" &&
    "$KAFKA_CONTROLLER_PORT" != "$KAFKA_SASL_PORT" ]] ||
    die "KAFKA_PORT ($KAFKA_PORT), KAFKA_CONTROLLER_PORT ($KAFKA_CONTROLLER_PORT) and KAFKA_SASL_PORT ($KAFKA_SASL_PORT) must differ"
}

cmd_start() {
  validate_ports
  require_positive_integer KAFKA_START_TIMEOUT "$KAFKA_START_TIMEOUT"
  require_java_17
  require_command kcat
  require_command setsid
  clear_previous_run
  require_free_port KAFKA_PORT "$KAFKA_PORT"
  require_free_port KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  require_free_port KAFKA_SASL_PORT "$KAFKA_SASL_PORT"

  local started_at=$SECONDS
  fetch_jars
  mkdir -p "$KAFKA_RUN_DIR/logs" "$KAFKA_RUN_DIR/data"
  touch "$RUN_DIR_MARKER"
  write_server_properties
  write_log4j_configs
  format_storage
  launch_broker
  wait_until_ready
  log "Kafka ${KAFKA_VERSION} is ready on 127.0.0.1:${KAFKA_PORT} (controller 127.0.0.1:${KAFKA_CONTROLLER_PORT}, SASL 127.0.0.1:${KAFKA_SASL_PORT}, pid $(<"$PID_FILE"), run directory $KAFKA_RUN_DIR, started in $((SECONDS - started_at))s)"
}

# Sends SIGTERM, which makes Kafka shut down cleanly, and SIGKILL if the broker
# is still running after KAFKA_STOP_TIMEOUT seconds.
stop_broker() {
  local pid="$1" deadline
  require_positive_integer KAFKA_STOP_TIMEOUT "$KAFKA_STOP_TIMEOUT"
  deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || return 0
  while process_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "the Kafka broker (pid $pid) did not stop within ${KAFKA_STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  while process_alive "$pid"; do
    sleep 0.1
  done
}

cmd_stop() {
  validate_ports
  local pid
  if pid="$(running_broker_pid)"; then
    stop_broker "$pid"
    log "stopped the Kafka broker (pid $pid) on 127.0.0.1:${KAFKA_PORT}"
  else
    log "no Kafka broker runs for port ${KAFKA_PORT}"
  fi
  if [[ -e "$KAFKA_RUN_DIR" ]]; then
    require_own_run_dir
    rm -rf "$KAFKA_RUN_DIR"
  fi
}

# Stops the broker and starts it again on the same configuration and data, as
# an operator restarting a broker would: topics, records and committed offsets
# stay.
cmd_restart() {
  validate_ports
  require_positive_integer KAFKA_START_TIMEOUT "$KAFKA_START_TIMEOUT"
  require_java_17
  require_command setsid
  [[ -f "$KAFKA_RUN_DIR/server.properties" ]] ||
    die "no broker was started for port ${KAFKA_PORT} (no $KAFKA_RUN_DIR/server.properties); run 'scripts/kafka.sh start' first"
  require_own_run_dir
  local pid
  if pid="$(running_broker_pid)"; then
    stop_broker "$pid"
    log "stopped the Kafka broker (pid $pid) on 127.0.0.1:${KAFKA_PORT}, keeping its data"
  fi
  local name
  for name in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_SASL_PORT; do
    require_free_port "$name" "${!name}"
  done
  local started_at=$SECONDS
  rm -f "$PID_FILE"
  launch_broker
  wait_until_ready
  log "Kafka ${KAFKA_VERSION} is ready again on 127.0.0.1:${KAFKA_PORT} (pid $(<"$PID_FILE"), restarted in $((SECONDS - started_at))s)"
}

# Kills the broker with SIGKILL, so that it writes nothing more and closes no
# connection cleanly, as when a machine or the JVM dies. Its run directory
# stays, so `restart` starts it again on the same data.
cmd_kill() {
  validate_ports
  local pid
  pid="$(running_broker_pid)" ||
    die "no Kafka broker runs for port ${KAFKA_PORT}; run 'scripts/kafka.sh start' first"
  kill -KILL "$pid"
  while process_alive "$pid"; do
    sleep 0.1
  done
  # The pid can turn zombie while the JVM's other threads still exit and may
  # still hold the listening sockets, which would fail the free-port check of
  # a restart right away. Wait until the ports are free.
  local deadline=$((SECONDS + 10)) name
  for name in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_SASL_PORT; do
    while port_in_use "${!name}"; do
      ((SECONDS < deadline)) ||
        die "port ${!name} ($name) is still in use 10s after SIGKILL of the broker (pid $pid)"
      sleep 0.1
    done
  done
  log "killed the Kafka broker (pid $pid) on 127.0.0.1:${KAFKA_PORT} with SIGKILL, keeping its data"
}

cmd_status() {
  validate_ports
  local pid
  if pid="$(running_broker_pid)"; then
    if broker_accepts_requests; then
      printf 'running: pid %s, 127.0.0.1:%s, run directory %s\n' "$pid" "$KAFKA_PORT" "$KAFKA_RUN_DIR"
    else
      printf 'starting or unresponsive: pid %s, 127.0.0.1:%s does not answer metadata requests, run directory %s\n' \
        "$pid" "$KAFKA_PORT" "$KAFKA_RUN_DIR"
    fi
    return 0
  fi
  printf 'stopped: no Kafka broker runs for port %s\n' "$KAFKA_PORT"
  return 3
}

cmd_create_topic() {
  (($# == 2)) || {
    usage
    die "create-topic needs NAME and PARTITIONS, got $# arguments"
  }
  validate_ports
  local name="$1" partitions="$2"
  [[ -n "$name" ]] || die "topic NAME must not be empty"
  require_positive_integer PARTITIONS "$partitions"
  running_broker_pid >/dev/null ||
    die "no Kafka broker runs for port ${KAFKA_PORT}; run 'scripts/kafka.sh start' first"
  require_java_17

  run_tool "$TOPIC_COMMAND_MAIN" --bootstrap-server "127.0.0.1:${KAFKA_PORT}" \
    --create --topic "$name" --partitions "$partitions" --replication-factor 1 >/dev/null ||
    die "creating topic '$name' with $partitions partitions failed (tool output above)"
  log "created topic '$name' (partitions: $partitions, replication factor: 1)"
}

main() {
  (($# >= 1)) || {
    usage
    exit 2
  }
  local command="$1"
  shift
  case "$command" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_restart ;;
    kill) cmd_kill ;;
    status) cmd_status ;;
    create-topic) cmd_create_topic "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage
      die "unknown command '$command'"
      ;;
  esac
}

main "$@"
