#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x broker (KRaft, combined broker+controller)
# on 127.0.0.1:9092, for development and tests. No Docker: the jars come from
# Maven Central through scripts/kafka/pom.xml and are cached under .cache/kafka/.
#
#   bash scripts/kafka.sh up      start (idempotent; the first run downloads the jars)
#   bash scripts/kafka.sh down    stop (idempotent)
#   bash scripts/kafka.sh reset   stop and delete all broker data
#   bash scripts/kafka.sh status  print whether it runs; exit 0 if it answers, else 1
#
# Environment (optional):
#   KAFKA_START_TIMEOUT  seconds `up` waits for the broker to serve (default 90)
#   KAFKA_HEAP_OPTS      broker heap flags (default "-Xmx512m -Xms256m")
#   JAVA_HOME            Java 17+ to use (default: java on PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/scripts/kafka/pom.xml"
# The pom is the one place the version is set; read it from there.
KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$POM" | head -n 1)"

CACHE="$ROOT/.cache/kafka"
LIB="$CACHE/$KAFKA_VERSION/lib"
# Holds the pom's checksum once every jar was copied: a half-finished or
# outdated download is never taken for a complete one.
MARKER="$CACHE/$KAFKA_VERSION/.complete"
# A second broker for fault tests: KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_RUN_DIR.
RUN="${KAFKA_RUN_DIR:-$CACHE/run}"
DATA="$RUN/logs"
PIDFILE="$RUN/broker.pid"
LOG="$RUN/broker.log"

HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

log() { echo "kafka: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# Prints the broker log's first errors (the cause, often followed by a long
# stack trace and shutdown noise) and its last lines to stderr, for failures.
log_tail() {
  [[ -s $LOG ]] || return 0
  if grep -qE '^\[[^]]*\] (ERROR|FATAL) ' "$LOG"; then
    echo "---- first errors in $LOG ----" >&2
    # -A 1: the line after an ERROR is usually the exception with the reason.
    grep -E -A 1 '^\[[^]]*\] (ERROR|FATAL) ' "$LOG" | cut -c 1-300 | head -n 12 >&2
  fi
  echo "---- last 40 lines of $LOG ----" >&2
  tail -n 40 "$LOG" >&2
  echo "----" >&2
}

# True when something accepts TCP connections on 127.0.0.1:9092.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
}

# Prints the pid of the broker this script started, if it still runs. The
# command-line check guards against a stale pid file whose pid was reused.
broker_pid() {
  local pid
  [[ -f $PIDFILE ]] || return 0
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka'; then
    echo "$pid"
  fi
}

check_java() {
  command -v "$JAVA" >/dev/null || die "java not found (Java 17+ is needed; set JAVA_HOME or PATH)"
  local major
  major="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
  [[ ${major:-0} -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found: $("$JAVA" -version 2>&1 | head -n 1)"
}

# Copies the broker's runtime jars into $LIB, unless the cache is complete.
fetch_jars() {
  local want
  want="$(sha256sum "$POM" | cut -d ' ' -f 1)"
  if [[ -f $MARKER && "$(cat "$MARKER")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: Maven is needed to download the Kafka jars"
  log "downloading Kafka $KAFKA_VERSION jars with Maven into ${LIB#"$ROOT"/} (first run only, takes a while)"
  # Start from an empty dir so jars of an older pom do not linger on the class path.
  rm -rf "$LIB" "$MARKER"
  mkdir -p "$LIB"
  # Maven's output goes to a file and is shown only when it fails: a good run
  # stays quiet (Debian's Maven 3.8 prints stray color codes even with -B -q),
  # a failed one shows Maven's own reason (unresolvable artifact, network, ...).
  if ! mvn -B -ntp -Dstyle.color=never -f "$POM" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB" \
    >"$CACHE/maven.log" 2>&1; then
    echo "---- last 40 lines of ${CACHE#"$ROOT"/}/maven.log ----" >&2
    tail -n 40 "$CACHE/maven.log" >&2
    echo "----" >&2
    rm -rf "$LIB"
    die "Maven could not download the Kafka jars (reason above; full output in ${CACHE#"$ROOT"/}/maven.log)"
  fi
  [[ -f "$LIB/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "download finished but kafka_2.13-$KAFKA_VERSION.jar is missing from $LIB"
  echo "$want" >"$MARKER"
}

write_configs() {
  mkdir -p "$DATA"
  cat >"$RUN/server.properties" <<EOF
# Written by scripts/kafka.sh on every 'up'; edits here are overwritten.
# Single node acting as both KRaft controller and broker.
process.roles=broker,controller
node.id=1
# A static one-voter quorum: plain 'kafka-storage format' works with it, no
# --standalone / dynamic-quorum bootstrapping needed.
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
# Bind to loopback only.
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=4
auto.create.topics.enable=true
# The internal topics default to replication factor 3; with one broker they
# could never be created, and consumer groups would loop on "The group
# coordinator is not available".
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests start consumer groups often; do not wait 3 s for more members.
group.initial.rebalance.delay.ms=0
EOF

  # Broker logging: log4j2 (Kafka 4.x) to stdout, which 'up' sends to broker.log.
  cat >"$RUN/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
# Per-partition chatter on every topic creation.
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.logmgr.name = org.apache.kafka.storage.internals.log
logger.logmgr.level = WARN
logger.unifiedlog.name = kafka.log
logger.unifiedlog.level = WARN
EOF

  # The command-line tools used here: warnings and errors only, to stderr.
  cat >"$RUN/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF

  # Short client timeouts for the readiness probe, so one try never blocks the
  # loop for the admin client's default 60 s.
  cat >"$RUN/probe.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# Command line for Kafka's command-line tools (main classes in the cached jars):
# a small, quick-starting JVM, since each runs for a second or two.
TOOL_JAVA=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  -Dlog4j2.configurationFile="$RUN/tools-log4j2.properties" -cp "$LIB/*")

# True when the broker answers a real request, not just a TCP connect. Leaves
# the topic list (internal topics included) in $TOPICS.
TOPICS=""
broker_serves() {
  port_open &&
    TOPICS="$(timeout 30 "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "$HOST:$PORT" --command-config "$RUN/probe.properties" --list \
      2>/dev/null)"
}

# On a fresh broker __consumer_offsets does not exist yet: the first consumer
# group's FindCoordinator creates it, and until then clients get (and kafkajs
# logs as an ERROR) "The group coordinator is not available". Describing a
# group makes the same FindCoordinator call, so the topic exists before any
# client comes. Best effort: the group does not exist and the tool says so.
warm_up_group_coordinator() {
  [[ $'\n'$TOPICS$'\n' == *$'\n'__consumer_offsets$'\n'* ]] && return 0
  timeout 30 "${TOOL_JAVA[@]}" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$HOST:$PORT" --describe --group kafka-sh-warm-up \
    >/dev/null 2>&1 || true
}

format_storage() {
  # meta.properties is what 'format' writes; its presence means the data dir
  # is already formatted (a restart keeps the existing data and cluster id).
  [[ -f $DATA/meta.properties ]] && return 0
  local cluster_id out
  cluster_id="$("${TOOL_JAVA[@]}" kafka.tools.StorageTool random-uuid)" ||
    die "could not generate a cluster id (kafka.tools.StorageTool random-uuid failed)"
  if ! out="$("${TOOL_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$RUN/server.properties" 2>&1)"; then
    echo "$out" >&2
    die "formatting the storage in ${DATA#"$ROOT"/} failed (try 'bash scripts/kafka.sh reset')"
  fi
}

start_broker() {
  # Keep the previous run's log for post-mortems.
  [[ -f $LOG ]] && mv -f "$LOG" "$LOG.1"
  rm -f "$PIDFILE"
  # setsid + nohup: the broker outlives this script and is not hit by the
  # caller's Ctrl-C or hang-up. The inner shell writes its own pid and then
  # execs java, so the pid file holds the JVM's pid whatever setsid does.
  # 9>&- : do not pass the lock (fd 9) on, or the broker would hold it forever.
  # KAFKA_HEAP_OPTS is unquoted on purpose: it holds several flags.
  # shellcheck disable=SC2016,SC2086 # $0/$$ are for the inner shell
  nohup setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$PIDFILE" \
    "$JAVA" ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$RUN/log4j2.properties" \
    -cp "$LIB/*" kafka.Kafka "$RUN/server.properties" \
    </dev/null >"$LOG" 2>&1 9>&- &
}

# Waits until the broker serves; on failure stops it and exits non-zero.
wait_ready() {
  local started=$SECONDS pid
  local deadline=$((started + START_TIMEOUT))
  while :; do
    pid="$(broker_pid)"
    if [[ -z $pid ]]; then
      # The pid file is written a moment after launch; only give up on a
      # missing process once that moment has surely passed.
      if ((SECONDS >= started + 5)); then
        log_tail
        die "the broker exited during startup (log: ${LOG#"$ROOT"/})"
      fi
    elif broker_serves; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log_tail
      stop_broker >/dev/null 2>&1 || true
      die "the broker did not serve on $HOST:$PORT within ${START_TIMEOUT}s; stopped it (log: ${LOG#"$ROOT"/})"
    fi
    sleep 1
  done
}

stop_broker() {
  local pid i
  pid="$(broker_pid)"
  if [[ -z $pid ]]; then
    rm -f "$PIDFILE"
    if port_open; then
      log "no broker started by this script runs, but $HOST:$PORT answers (another Kafka?); left alone"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  # A clean shutdown (flush, controlled shutdown) usually takes a few seconds.
  for ((i = 0; i < 150; i++)); do
    [[ -n "$(broker_pid)" ]] || break
    sleep 0.2
  done
  if [[ -n "$(broker_pid)" ]]; then
    log "broker (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -n "$(broker_pid)" ]] || break
      sleep 0.2
    done
  fi
  rm -f "$PIDFILE"
  log "stopped (pid $pid)"
}

cmd_up() {
  # Already serving (ours or anyone's): nothing to do, say nothing.
  if port_open; then
    return 0
  fi
  check_java
  fetch_jars
  write_configs
  # Ours still starting (e.g. an 'up' that was interrupted while waiting)?
  # Wait for it rather than start a second one.
  if [[ -z "$(broker_pid)" ]]; then
    format_storage
    start_broker
  fi
  wait_ready
  warm_up_group_coordinator
  echo "kafka: up on $HOST:$PORT"
}

cmd_status() {
  local pid
  pid="$(broker_pid)"
  if port_open; then
    echo "kafka: up on $HOST:$PORT${pid:+ (pid $pid)}"
  elif [[ -n $pid ]]; then
    echo "kafka: starting or unhealthy (pid $pid, $HOST:$PORT not answering)"
    return 1
  else
    echo "kafka: down"
    return 1
  fi
}

main() {
  [[ -n $KAFKA_VERSION ]] || die "cannot read <kafka.version> from $POM"
  mkdir -p "$CACHE"
  # Serialise concurrent calls (e.g. parallel test setups): the second 'up'
  # waits for the first and then finds the broker running.
  exec 9>"$CACHE/.lock"
  flock 9

  case "${1:-}" in
  up) cmd_up ;;
  down) stop_broker ;;
  reset)
    stop_broker
    rm -rf "$RUN"
    log "reset: removed ${RUN#"$ROOT"/}"
    ;;
  status) cmd_status ;;
  *)
    echo "usage: bash scripts/kafka.sh up|down|reset|status" >&2
    exit 2
    ;;
  esac
}

main "$@"
