#!/usr/bin/env bash
# Local development stack without Docker: Apache Kafka (KRaft), PostgreSQL, Elasticsearch, stripe-mock.
#
#   infra/stack.sh up [SERVER...]      install on first use, start, wait until each answers
#   infra/stack.sh down [SERVER...]    stop (SIGTERM, then SIGKILL after a grace period)
#   infra/stack.sh restart [SERVER...]
#   infra/stack.sh kill SERVER         SIGKILL, as a crash (the fault tests); kafka-1..kafka-3: one cluster node
#   infra/stack.sh start|stop SERVER   aliases of up/down
#   infra/stack.sh status              one line per server
#   infra/stack.sh logs SERVER [LINES] tail of the server's main log (kafka-1..kafka-3: a cluster node's)
#   infra/stack.sh tools TOOL...       install programs the platform's own processes run: nginx (the edge),
#                                      prometheus, chromium (with chromedriver; the browser tests)
#
# SERVER is kafka, postgres (pg), elasticsearch (es) or stripe-mock; default: all four (`down` and
# `status`: also kafka-cluster). kafka-cluster is the three-broker Kafka cluster, instead of kafka.
# All state lives under <repo>/.local/; every server listens on 127.0.0.1 only.
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_CLUSTER_PORT (9092: the cluster's
# nodes listen on it, +2, +4; their controllers on +1, +3, +5), PG_PORT (5432), ES_PORT (9200),
# ES_TRANSPORT_PORT (9300), STACK_READY_TIMEOUT (120 s), PG_DATABASES ("users catalog orders payments"),
# PG_MAX_CONNECTIONS (200), ES_JAVA_HOME (default: the JDK of `java` on PATH), JAVA_HOME (Kafka's JDK; default: `java` on PATH),
# STRIPE_MOCK_PORT (12111; plain HTTP). stripe-mock is built with `go` (on PATH) on first use.
set -euo pipefail

INFRA_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(dirname -- "$INFRA_DIR")
LOCAL_DIR=$REPO_ROOT/.local

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
PG_PORT=${PG_PORT:-5432}
ES_PORT=${ES_PORT:-9200}
ES_TRANSPORT_PORT=${ES_TRANSPORT_PORT:-9300}
STRIPE_MOCK_PORT=${STRIPE_MOCK_PORT:-12111}
READY_TIMEOUT=${STACK_READY_TIMEOUT:-120}
PG_DATABASES=${PG_DATABASES:-users catalog orders payments}
PG_MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-200}

DEFAULT_SERVERS=(postgres kafka elasticsearch stripe-mock) # what `up` starts when given no names
ALL_SERVERS=(postgres kafka kafka-cluster elasticsearch stripe-mock)

# --- Kafka -------------------------------------------------------------------------------------
KAFKA_DIR=$LOCAL_DIR/kafka
KAFKA_LIB=$KAFKA_DIR/lib
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_LOGS=$KAFKA_DIR/logs
KAFKA_CONFIG=$KAFKA_DIR/server.properties
KAFKA_PID_FILE=$KAFKA_DIR/kafka.pid
KAFKA_POM=$INFRA_DIR/kafka/pom.xml
KAFKA_LOG4J=$INFRA_DIR/kafka/log4j2.properties
KAFKA_JVM_OPTIONS=$INFRA_DIR/kafka/jvm.options
KAFKA_STARTED_LINE='Kafka Server started'
KAFKA_LOG_OFFSET=''   # size of server.log when this invocation launched Kafka; empty: not launched

# --- Kafka, three nodes ------------------------------------------------------------------------
KAFKA_CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-9092}
KAFKA_CLUSTER_DIR=$LOCAL_DIR/kafka-cluster
KAFKA_CLUSTER_NODES=(1 2 3)
declare -A KAFKA_NODE_LOG_OFFSET=() # as KAFKA_LOG_OFFSET, per node launched by this invocation

# --- PostgreSQL --------------------------------------------------------------------------------
PG_OS_USER=postgres
PG_DIR=$LOCAL_DIR/postgres
PG_DATA=$PG_DIR/data
PG_RUN=$PG_DIR/run
PG_LOGS=$PG_DIR/logs
PG_LOG=$PG_LOGS/postgres.log
PG_BIN=''

# --- Elasticsearch -----------------------------------------------------------------------------
ES_VERSION=8.19.21
ES_ARTIFACT=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip
ES_OS_USER=elasticsearch-local
ES_CLUSTER_NAME=local-stack
ES_DIR=$LOCAL_DIR/elasticsearch
ES_HOME=$ES_DIR/elasticsearch-$ES_VERSION
ES_DATA=$ES_DIR/data
ES_LOGS=$ES_DIR/logs
ES_TMP=$ES_DIR/tmp
ES_RUN=$ES_DIR/run
ES_PID_FILE=$ES_RUN/elasticsearch.pid
ES_CONFIG=$ES_HOME/config/elasticsearch.yml

# --- stripe-mock -------------------------------------------------------------------------------
STRIPE_MOCK_VERSION=v0.203.0
STRIPE_MOCK_MODULE=github.com/stripe/stripe-mock
STRIPE_MOCK_DIR=$LOCAL_DIR/stripe-mock
STRIPE_MOCK_HOME=$STRIPE_MOCK_DIR/stripe-mock-$STRIPE_MOCK_VERSION
STRIPE_MOCK_BIN=$STRIPE_MOCK_HOME/stripe-mock
STRIPE_MOCK_PID_FILE=$STRIPE_MOCK_DIR/stripe-mock.pid
STRIPE_MOCK_LOG=$STRIPE_MOCK_DIR/stripe-mock.log
STRIPE_MOCK_API_KEY=sk_test_123 # stripe-mock accepts any well-formed test key; this one is its docs' example

MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# === helpers ===================================================================================

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

require_root() {
  [[ $EUID -eq 0 ]] || die "run as root (PostgreSQL and Elasticsearch run under their own OS users via runuser)"
}

# Serialise concurrent invocations (e.g. two test runs calling `up`). Launched servers must not
# inherit the lock descriptor, hence the `9>&-` on every launch below.
take_lock() {
  mkdir -p "$LOCAL_DIR"
  exec 9>"$LOCAL_DIR/.stack.lock"
  flock -w 600 9 || die "another infra/stack.sh is still running (lock $LOCAL_DIR/.stack.lock)"
}

APT_UPDATED=''
apt_install() {
  # Install Debian packages without letting their maintainer scripts start system services.
  local created_policy='' rc=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  log "installing Debian packages: $*"
  {
    if [[ -z $APT_UPDATED ]]; then apt-get update -qq && APT_UPDATED=1; fi &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  } || rc=$?
  if [[ -n $created_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

ensure_cmd() { # COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}

ensure_system_user() { # NAME
  id -u "$1" >/dev/null 2>&1 && return 0
  log "creating system user $1"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
}

# Fail early, with a clear message, when an unprivileged server user cannot reach its directory
# (e.g. the repository sits under a mode-700 home directory).
check_reachable() { # USER DIR
  runuser -u "$1" -- test -r "$2" -a -w "$2" -a -x "$2" ||
    die "user $1 cannot use $2: every parent directory must be traversable (chmod o+x) by $1"
}

port_open() { # PORT: something accepts TCP connections on 127.0.0.1:PORT
  # shellcheck disable=SC2016 # expanded by the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

check_port_free() { # SERVER PORT VARIABLE
  if port_open "$2"; then
    die "$1: 127.0.0.1:$2 is already in use by another process; set $3 to a free port (e.g. $3=$(($2 + 1000)) infra/stack.sh up $1)"
  fi
}

pid_running() { # PID: process exists and is not a zombie (orphans may stay unreaped in containers)
  local stat
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) } # the state letter follows the parenthesised command name
  [[ ${stat:0:1} != [ZX] ]]
}

pid_matches() { # PID TEXT: process is running and its command line contains TEXT
  local cmdline
  pid_running "$1" || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  [[ $cmdline == *"$2"* ]]
}

read_pid() { # FILE
  local pid=''
  if [[ -s $1 ]]; then read -r pid <"$1" || true; fi
  printf '%s' "$pid"
}

stop_pid() { # SERVER PID GRACE_SECONDS
  local name=$1 pid=$2 grace=$3 deadline
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while pid_running "$pid"; do
    if ((SECONDS >= deadline)); then
      log "$name: still running after ${grace}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  log "$name: stopped"
}

file_size() { # FILE (0 when absent)
  if [[ -f $1 ]]; then stat -c %s "$1"; else echo 0; fi
}

# Copy TEMPLATE to OUTPUT replacing @KEY@ tokens; fails on any token left over.
render() { # TEMPLATE OUTPUT KEY=VALUE...
  local template=$1 output=$2 content kv
  shift 2
  content=$(<"$template")
  for kv in "$@"; do
    content=${content//"@${kv%%=*}@"/"${kv#*=}"}
  done
  if [[ $content =~ @[A-Z_]+@ ]]; then die "unreplaced token ${BASH_REMATCH[0]} in $template"; fi
  printf '%s\n' "$content" >"$output.tmp"
  mv -f "$output.tmp" "$output"
}

config_value() { # FILE KEY SEPARATOR DEFAULT: value of KEY in a properties/yaml file
  local value=''
  if [[ -f $1 ]]; then
    value=$(sed -n "s/^$2[[:space:]]*$3[[:space:]]*//p" "$1" | tail -n1)
  fi
  printf '%s' "${value:-$4}"
}

# Wait until CHECK succeeds; fail (with the log tail) when the server dies or the time is up.
wait_ready() { # SERVER CHECK...
  local name=$1 deadline=$((SECONDS + READY_TIMEOUT))
  shift
  until "$@"; do
    if ! "${name}_alive"; then fail_with_log "$name" "the process exited during startup"; fi
    if ((SECONDS >= deadline)); then fail_with_log "$name" "not ready after ${READY_TIMEOUT}s"; fi
    sleep 1
  done
}

fail_with_log() { # SERVER MESSAGE [EXTRA_FILE]: print the tail of the server's log (and of EXTRA_FILE)
  local file
  for file in "$("${1}_log_file")" "${3:-}"; do
    [[ -n $file && -s $file ]] || continue
    printf '[stack] --- last lines of %s:\n' "$file" >&2
    tail -n 40 "$file" >&2 || true
  done
  printf '[stack] ERROR: %s: %s\n' "$1" "$2" >&2
  exit 1
}

maven() { # ARGS...: Maven in batch mode, output to .local/maven.log (shown on failure); caches in ~/.m2
  ensure_cmd java default-jre-headless
  ensure_cmd mvn maven
  mkdir -p "$LOCAL_DIR"
  if ! mvn -B -Dstyle.color=never "$@" >"$LOCAL_DIR/maven.log" 2>&1; then
    tail -n 40 "$LOCAL_DIR/maven.log" >&2
    die "maven failed: mvn $* (full output: $LOCAL_DIR/maven.log)"
  fi
}

java_cmd() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    printf '%s' "$JAVA_HOME/bin/java"
  else
    ensure_cmd java default-jre-headless
    command -v java
  fi
}

# === Kafka =====================================================================================
# The single broker (`kafka`) and each node of the three-node cluster (`kafka-cluster`) are the same
# kind of node: one config template, one JVM command line (infra/kafka/jvm.options), one readiness
# check. tests/support/kafka_cluster.py starts the tests' private clusters from the same files.

kafka_log_file() { printf '%s' "$KAFKA_LOGS/server.log"; }
kafka_pid() { read_pid "$KAFKA_PID_FILE"; }
kafka_alive() { pid_matches "$(kafka_pid)" "kafka.Kafka $KAFKA_CONFIG"; }
kafka_port() { config_value "$KAFKA_CONFIG" advertised.listeners = "PLAINTEXT://127.0.0.1:$KAFKA_PORT" | sed 's/.*://'; }

kafka_install() {
  local stamp=$KAFKA_LIB/.pom.sha256 want
  want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then return 0; fi
  log "kafka: copying the broker's jars from Maven (cached in ~/.m2) into $KAFKA_LIB"
  rm -rf "$KAFKA_LIB"
  mkdir -p "$KAFKA_LIB"
  maven -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIB"
  printf '%s\n' "$want" >"$stamp"
}

kafka_java() { # LOGS_DIR ARGS...: java with the broker's classpath and logging set up
  local java logs=$1
  shift
  java=$(java_cmd)
  "$java" -cp "$KAFKA_LIB/*" -Dkafka.logs.dir="$logs" -Dlog4j2.configurationFile="$KAFKA_LOG4J" "$@"
}

kafka_render() { # CONFIG NODE_ID PORT CONTROLLER_PORT QUORUM DATA_DIR REPLICATION MIN_ISR SESSION_MS HEARTBEAT_MS
  render "$INFRA_DIR/kafka/server.properties.template" "$1" \
    KAFKA_NODE_ID="$2" KAFKA_PORT="$3" KAFKA_CONTROLLER_PORT="$4" KAFKA_CONTROLLER_QUORUM="$5" \
    KAFKA_DATA_DIR="$6" KAFKA_REPLICATION_FACTOR="$7" KAFKA_MIN_INSYNC_REPLICAS="$8" \
    KAFKA_BROKER_SESSION_TIMEOUT_MS="$9" KAFKA_BROKER_HEARTBEAT_INTERVAL_MS="${10}"
}

kafka_launch() { # CONFIG LOGS_DIR PID_FILE: start one node in the background; its pid goes to PID_FILE
  local config=$1 logs=$2 pid_file=$3 java i
  java=$(java_cmd)
  rm -f "$pid_file"
  # setsid: own session, so nothing aimed at the caller's process group reaches the broker.
  # The inner shell records its own pid, which `exec` hands over to the JVM.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid nohup bash -c 'echo "$$" >"$1"; shift; exec "$@"' _ "$pid_file" \
    "$java" @"$KAFKA_JVM_OPTIONS" \
    -cp "$KAFKA_LIB/*" -Dkafka.logs.dir="$logs" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
    kafka.Kafka "$config" \
    >"$logs/stdout.log" 2>&1 </dev/null 9>&- &
  for ((i = 0; i < 50; i++)); do
    [[ -s $pid_file ]] && break
    sleep 0.1
  done
}

kafka_started_since() { # LOG_FILE OFFSET: the node logged that it started, after OFFSET bytes of its log
  local file=$1 offset=$2
  if (($(file_size "$file") < offset)); then offset=0; fi # the log rolled over meanwhile
  # No `grep -q`: exiting early would SIGPIPE tail, which pipefail turns into a failure.
  tail -c +"$((offset + 1))" "$file" 2>/dev/null | grep -F "$KAFKA_STARTED_LINE" >/dev/null
}

kafka_format() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local cluster_id
  cluster_id=$(kafka_java "$KAFKA_LOGS" kafka.tools.StorageTool random-uuid | tail -n1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: unexpected cluster id '$cluster_id'"
  log "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
  kafka_java "$KAFKA_LOGS" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONFIG" --standalone >/dev/null
}

kafka_start() {
  if kafka_alive; then
    log "kafka: already running (pid $(kafka_pid), port $(kafka_port))"
    return 0
  fi
  if [[ -n $(kafka-cluster_pid) ]]; then
    die "kafka: the three-broker cluster is running; stop it first (infra/stack.sh down kafka-cluster)"
  fi
  rm -f "$KAFKA_PID_FILE"
  check_port_free kafka "$KAFKA_PORT" KAFKA_PORT
  check_port_free kafka "$KAFKA_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
  kafka_install
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  # One node: every internal topic has a single replica; Kafka's own failure detection timings.
  kafka_render "$KAFKA_CONFIG" 1 "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "127.0.0.1:$KAFKA_CONTROLLER_PORT" \
    "$KAFKA_DATA" 1 1 9000 2000
  kafka_format

  KAFKA_LOG_OFFSET=$(file_size "$(kafka_log_file)")
  log "kafka: starting on 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)"
  kafka_launch "$KAFKA_CONFIG" "$KAFKA_LOGS" "$KAFKA_PID_FILE"
}

kafka_ready() {
  port_open "$(kafka_port)" || return 1
  [[ -z $KAFKA_LOG_OFFSET ]] && return 0 # already running before this invocation
  kafka_started_since "$(kafka_log_file)" "$KAFKA_LOG_OFFSET"
}

kafka_wait() {
  wait_ready kafka kafka_ready
  log "kafka: ready on 127.0.0.1:$(kafka_port)"
}

kafka_stop() {
  if kafka_alive; then stop_pid kafka "$(kafka_pid)" 30; else log "kafka: not running"; fi
  rm -f "$KAFKA_PID_FILE"
}

# === Kafka, three nodes ========================================================================
# Three combined broker+controller nodes (a three-voter KRaft quorum): node N listens on
# KAFKA_CLUSTER_PORT + 2(N-1), its controller on the port after. Internal topics are replicated 3
# times with min ISR 2, and a silent broker is fenced (its partitions led elsewhere) after 3 s.

kafka_node_dir() { printf '%s' "$KAFKA_CLUSTER_DIR/node-$1"; }
kafka_node_config() { printf '%s' "$(kafka_node_dir "$1")/server.properties"; }
kafka_node_pid_file() { printf '%s' "$(kafka_node_dir "$1")/kafka.pid"; }
kafka_node_log_file() { printf '%s' "$(kafka_node_dir "$1")/logs/server.log"; }
kafka_node_pid() { read_pid "$(kafka_node_pid_file "$1")"; }
kafka_node_alive() { pid_matches "$(kafka_node_pid "$1")" "kafka.Kafka $(kafka_node_config "$1")"; }
kafka_node_wanted_port() { printf '%s' "$((KAFKA_CLUSTER_PORT + 2 * ($1 - 1)))"; }
kafka_node_controller_port() { printf '%s' "$((KAFKA_CLUSTER_PORT + 2 * ($1 - 1) + 1))"; }
kafka_node_port() { # the port of the node as last started (from its config), else the wanted one
  config_value "$(kafka_node_config "$1")" advertised.listeners = "PLAINTEXT://127.0.0.1:$(kafka_node_wanted_port "$1")" |
    sed 's/.*://'
}

kafka-cluster_pid() { # the running nodes' pids, space-separated
  local node pids=()
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do
    if kafka_node_alive "$node"; then pids+=("$(kafka_node_pid "$node")"); fi
  done
  printf '%s' "${pids[*]}"
}
kafka-cluster_alive() { # every node runs
  local node
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do kafka_node_alive "$node" || return 1; done
}
kafka-cluster_state() {
  local running
  running=$(kafka-cluster_pid | wc -w)
  if ((running == 0)); then echo stopped; elif ((running == ${#KAFKA_CLUSTER_NODES[@]})); then echo running; else
    echo "$running/${#KAFKA_CLUSTER_NODES[@]} up"
  fi
}
kafka-cluster_port() {
  local node ports=()
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do ports+=("$(kafka_node_port "$node")"); done
  (IFS=,; printf '%s' "${ports[*]}")
}
kafka-cluster_log_file() { # the log of the first node that is down or not started yet (else node 1's)
  local node
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do
    if ! kafka_node_alive "$node" || ! kafka_node_ready "$node"; then
      kafka_node_log_file "$node"
      return 0
    fi
  done
  kafka_node_log_file "${KAFKA_CLUSTER_NODES[0]}"
}

kafka_uuid() { # a Kafka Uuid as its tools print one: 16 random bytes in URL-safe base64, never starting with '-'
  local id
  while id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); [[ $id == -* ]]; do :; done
  printf '%s' "$id"
}

# The first start formats every node with one cluster id and the initial quorum (each controller with
# its metadata directory's id); cluster.id is written last, so an interrupted first start begins again.
kafka_cluster_format() {
  local node voters=() pids=() pid
  if [[ -f $KAFKA_CLUSTER_DIR/cluster.id ]]; then
    for node in "${KAFKA_CLUSTER_NODES[@]}"; do
      [[ -f $(kafka_node_dir "$node")/data/meta.properties ]] ||
        die "kafka-cluster: node $node has lost its data; delete $KAFKA_CLUSTER_DIR to start a new cluster"
    done
    return 0
  fi
  local cluster_id
  cluster_id=$(kafka_uuid)
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do
    rm -rf "$(kafka_node_dir "$node")/data"
    voters+=("$node@127.0.0.1:$(kafka_node_controller_port "$node"):$(kafka_uuid)")
  done
  log "kafka-cluster: formatting ${#KAFKA_CLUSTER_NODES[@]} nodes (cluster id $cluster_id)"
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do
    kafka_java "$(kafka_node_dir "$node")/logs" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$(kafka_node_config "$node")" --initial-controllers "$(IFS=,; printf '%s' "${voters[*]}")" \
      >"$(kafka_node_dir "$node")/logs/format.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || die "kafka-cluster: formatting failed (see $KAFKA_CLUSTER_DIR/node-*/logs/format.log)"
  done
  printf '%s\n' "$KAFKA_CLUSTER_PORT" >"$KAFKA_CLUSTER_DIR/cluster.port"
  printf '%s\n' "$cluster_id" >"$KAFKA_CLUSTER_DIR/cluster.id"
}

kafka-cluster_start() {
  local node stopped=() port formatted_port
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do kafka_node_alive "$node" || stopped+=("$node"); done
  if ((${#stopped[@]} == 0)); then
    log "kafka-cluster: already running (pids $(kafka-cluster_pid), ports $(kafka-cluster_port))"
    return 0
  fi
  if kafka_alive; then
    die "kafka-cluster: the single broker is running; stop it first (infra/stack.sh down kafka)"
  fi
  formatted_port=$(cat "$KAFKA_CLUSTER_DIR/cluster.port" 2>/dev/null || true)
  if [[ -f $KAFKA_CLUSTER_DIR/cluster.id && $formatted_port != "$KAFKA_CLUSTER_PORT" ]]; then
    die "kafka-cluster: made with KAFKA_CLUSTER_PORT=$formatted_port (its quorum keeps those ports); use it, or delete $KAFKA_CLUSTER_DIR"
  fi
  for node in "${stopped[@]}"; do
    for port in "$(kafka_node_wanted_port "$node")" "$(kafka_node_controller_port "$node")"; do
      if port_open "$port"; then
        die "kafka-cluster: 127.0.0.1:$port is already in use; set KAFKA_CLUSTER_PORT to the first of six free ports (e.g. KAFKA_CLUSTER_PORT=19092)"
      fi
    done
  done
  kafka_install
  local quorum=()
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do quorum+=("127.0.0.1:$(kafka_node_controller_port "$node")"); done
  for node in "${stopped[@]}"; do
    mkdir -p "$(kafka_node_dir "$node")/data" "$(kafka_node_dir "$node")/logs"
    kafka_render "$(kafka_node_config "$node")" "$node" "$(kafka_node_wanted_port "$node")" \
      "$(kafka_node_controller_port "$node")" "$(IFS=,; printf '%s' "${quorum[*]}")" \
      "$(kafka_node_dir "$node")/data" 3 2 3000 500
  done
  kafka_cluster_format
  for node in "${stopped[@]}"; do
    KAFKA_NODE_LOG_OFFSET[$node]=$(file_size "$(kafka_node_log_file "$node")")
    log "kafka-cluster: starting node $node on 127.0.0.1:$(kafka_node_wanted_port "$node") (controller 127.0.0.1:$(kafka_node_controller_port "$node"))"
    kafka_launch "$(kafka_node_config "$node")" "$(kafka_node_dir "$node")/logs" "$(kafka_node_pid_file "$node")"
  done
}

kafka_node_ready() { # NODE
  port_open "$(kafka_node_port "$1")" || return 1
  [[ -z ${KAFKA_NODE_LOG_OFFSET[$1]:-} ]] && return 0 # already running before this invocation
  kafka_started_since "$(kafka_node_log_file "$1")" "${KAFKA_NODE_LOG_OFFSET[$1]}"
}

kafka-cluster_ready() {
  local node
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do kafka_node_ready "$node" || return 1; done
}

kafka-cluster_wait() {
  wait_ready kafka-cluster kafka-cluster_ready
  log "kafka-cluster: ready; bootstrap servers $(kafka-cluster_bootstrap)"
}

kafka-cluster_bootstrap() {
  local node servers=()
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do servers+=("127.0.0.1:$(kafka_node_port "$node")"); done
  (IFS=,; printf '%s' "${servers[*]}")
}

kafka-cluster_stop() { # all nodes at once: each one's controlled shutdown needs the quorum of the others
  local node pids=() pid
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do
    if kafka_node_alive "$node"; then
      stop_pid "kafka-cluster node $node" "$(kafka_node_pid "$node")" 30 &
      pids+=($!)
    fi
  done
  if ((${#pids[@]} == 0)); then log "kafka-cluster: not running"; fi
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do rm -f "$(kafka_node_pid_file "$node")"; done
}

# === PostgreSQL ================================================================================

postgres_log_file() { printf '%s' "$PG_LOG"; }
postgres_pid() { read_pid "$PG_DATA/postmaster.pid"; }
postgres_alive() { pid_matches "$(postgres_pid)" "$PG_DATA"; }
postgres_port() { # line 4 of postmaster.pid is the port the running server uses
  local port=''
  if [[ -f $PG_DATA/postmaster.pid ]]; then port=$(sed -n 4p "$PG_DATA/postmaster.pid"); fi
  printf '%s' "${port:-$PG_PORT}"
}

postgres_find_bin() { # highest installed major version
  local pg_ctl
  pg_ctl=$(compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' | sort -V | tail -n1) || true
  [[ -n $pg_ctl ]] || return 1
  dirname "$pg_ctl"
}

postgres_install() {
  PG_BIN=$(postgres_find_bin || true)
  if [[ -z $PG_BIN ]]; then
    apt_install postgresql
    PG_BIN=$(postgres_find_bin || true)
    [[ -n $PG_BIN ]] || die "postgres: no /usr/lib/postgresql/*/bin after installing the postgresql package"
  fi
  ensure_system_user "$PG_OS_USER"
}

as_postgres() { # ARGS...: run a PostgreSQL binary as the postgres OS user, from a directory it can read
  (cd "$PG_DIR" && exec runuser -u "$PG_OS_USER" -- "$@")
}

postgres_start() {
  if postgres_alive; then
    log "postgres: already running (pid $(postgres_pid), port $(postgres_port))"
    return 0
  fi
  check_port_free postgres "$PG_PORT" PG_PORT
  postgres_install
  mkdir -p "$LOCAL_DIR"
  install -d -o "$PG_OS_USER" -g "$PG_OS_USER" -m 700 "$PG_DIR" "$PG_DATA" "$PG_RUN" "$PG_LOGS"
  check_reachable "$PG_OS_USER" "$PG_DIR"

  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    log "postgres: initdb $PG_DATA ($(basename "$(dirname "$PG_BIN")"))"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
      >"$PG_LOGS/initdb.log" 2>&1 || {
      tail -n 40 "$PG_LOGS/initdb.log" >&2
      die "postgres: initdb failed"
    }
  fi

  # Unix socket paths are limited to 107 bytes; with a very deep checkout use TCP only.
  local sockets="'$PG_RUN'"
  if ((${#PG_RUN} > 90)); then sockets="''"; fi
  log "postgres: starting on 127.0.0.1:$PG_PORT"
  # 200 connections, not 100: the tests and the bench run several deployments of the platform side by
  # side on this one server (the bench's chaos run met "too many clients" at 100).
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$READY_TIMEOUT" \
    -o "-p $PG_PORT -k $sockets -c listen_addresses=127.0.0.1 -c max_connections=$PG_MAX_CONNECTIONS" start >/dev/null 9>&- ||
    fail_with_log postgres "pg_ctl start failed"
}

postgres_ready() {
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(postgres_port)" -U postgres -t 2
}

postgres_psql() { # ARGS...
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(postgres_port)" -U postgres -d postgres "$@"
}

# One role (LOGIN, no password: trust on loopback) and one database owned by it per service.
postgres_create_databases() {
  local name
  for name in $PG_DATABASES; do
    [[ $name =~ ^[a-z_][a-z0-9_]*$ ]] || die "postgres: invalid database name '$name' in PG_DATABASES"
    postgres_psql -v name="$name" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'name', :'name') \gexec
SQL
  done
}

postgres_wait() {
  [[ -n $PG_BIN ]] || PG_BIN=$(postgres_find_bin)
  wait_ready postgres postgres_ready
  postgres_create_databases
  log "postgres: ready on 127.0.0.1:$(postgres_port) (databases: $PG_DATABASES)"
}

postgres_stop() {
  if ! postgres_alive; then
    log "postgres: not running"
    return 0
  fi
  PG_BIN=$(postgres_find_bin)
  log "postgres: stopping (pid $(postgres_pid))"
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
  log "postgres: stopped"
}

# === Elasticsearch =============================================================================

elasticsearch_log_file() { printf '%s' "$ES_LOGS/$ES_CLUSTER_NAME.log"; }
elasticsearch_pid() { read_pid "$ES_PID_FILE"; }
elasticsearch_alive() { pid_matches "$(elasticsearch_pid)" "-Des.path.home=$ES_HOME"; }
elasticsearch_port() { config_value "$ES_CONFIG" http.port : "$ES_PORT"; }

elasticsearch_java_home() {
  if [[ -n ${ES_JAVA_HOME:-} ]]; then
    printf '%s' "$ES_JAVA_HOME"
    return 0
  fi
  ensure_cmd java default-jre-headless
  local java
  java=$(readlink -f "$(command -v java)")
  dirname "$(dirname "$java")"
}

elasticsearch_install() {
  if [[ ! -x $ES_HOME/bin/elasticsearch ]]; then
    ensure_cmd unzip unzip
    local staging=$ES_DIR/.download
    rm -rf "$staging"
    mkdir -p "$staging"
    log "elasticsearch: fetching $ES_ARTIFACT with Maven (cached in ~/.m2)"
    # Run from the (pom-less) staging directory so no project pom is picked up.
    (cd "$staging" && maven "$MAVEN_DEPENDENCY_PLUGIN:copy" -Dartifact="$ES_ARTIFACT" -DoutputDirectory="$staging")
    unzip -q "$staging/elasticsearch-$ES_VERSION.zip" -d "$staging"
    mv "$staging/elasticsearch-$ES_VERSION" "$ES_HOME"
    rm -rf "$staging"
  fi
  ensure_cmd curl curl
  ensure_system_user "$ES_OS_USER"
}

elasticsearch_start() {
  if elasticsearch_alive; then
    log "elasticsearch: already running (pid $(elasticsearch_pid), port $(elasticsearch_port))"
    return 0
  fi
  rm -f "$ES_PID_FILE"
  check_port_free elasticsearch "$ES_PORT" ES_PORT
  check_port_free elasticsearch "$ES_TRANSPORT_PORT" ES_TRANSPORT_PORT
  elasticsearch_install
  render "$INFRA_DIR/elasticsearch/elasticsearch.yml.template" "$ES_CONFIG" \
    ES_CLUSTER_NAME="$ES_CLUSTER_NAME" ES_PORT="$ES_PORT" ES_TRANSPORT_PORT="$ES_TRANSPORT_PORT" \
    ES_DATA_DIR="$ES_DATA" ES_LOGS_DIR="$ES_LOGS"
  install -d -o "$ES_OS_USER" -g "$ES_OS_USER" -m 750 "$ES_DIR" "$ES_DATA" "$ES_LOGS" "$ES_TMP" "$ES_RUN"
  chown -R "$ES_OS_USER:$ES_OS_USER" "$ES_HOME" # it writes its keystore into config/
  check_reachable "$ES_OS_USER" "$ES_DIR"

  local java_home
  java_home=$(elasticsearch_java_home)
  log "elasticsearch: starting on 127.0.0.1:$ES_PORT"
  # -d daemonises once the node has started; the working directory (logs/) receives gc.log and
  # any hs_err file, which the stock jvm.options write relative to it.
  if ! (cd "$ES_LOGS" && exec timeout "$READY_TIMEOUT" setsid --wait runuser -u "$ES_OS_USER" -- env \
    ES_JAVA_HOME="$java_home" ES_JAVA_OPTS="-Xms512m -Xmx512m ${ES_JAVA_OPTS:-}" \
    ES_TMPDIR="$ES_TMP" ES_PATH_CONF="$ES_HOME/config" \
    "$ES_HOME/bin/elasticsearch" -d -p "$ES_PID_FILE") \
    >"$ES_DIR/stdout.log" 2>&1 </dev/null 9>&-; then
    fail_with_log elasticsearch "bin/elasticsearch -d failed (or did not return within ${READY_TIMEOUT}s)" \
      "$ES_DIR/stdout.log"
  fi
}

elasticsearch_ready() {
  local body
  body=$(curl -fsS --max-time 5 \
    "http://127.0.0.1:$(elasticsearch_port)/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null) ||
    return 1
  [[ $body == *'"status":"green"'* || $body == *'"status":"yellow"'* ]]
}

elasticsearch_wait() {
  wait_ready elasticsearch elasticsearch_ready
  log "elasticsearch: ready on http://127.0.0.1:$(elasticsearch_port)"
}

elasticsearch_stop() {
  if elasticsearch_alive; then stop_pid elasticsearch "$(elasticsearch_pid)" 60; else log "elasticsearch: not running"; fi
  rm -f "$ES_PID_FILE"
}

# === stripe-mock ===============================================================================
# The server is called stripe-mock everywhere (status, logs, messages), hence the hyphen in these
# function names, which bash allows and the generic "${name}_start" calls need.

stripe-mock_log_file() { printf '%s' "$STRIPE_MOCK_LOG"; }
stripe-mock_pid() { read_pid "$STRIPE_MOCK_PID_FILE"; }
stripe-mock_alive() { pid_matches "$(stripe-mock_pid)" "$STRIPE_MOCK_BIN -http-addr"; }
stripe-mock_port() { # the running server's port (from its -http-addr argument), else STRIPE_MOCK_PORT
  local pid args i
  pid=$(stripe-mock_pid)
  if stripe-mock_alive && mapfile -d '' -t args <"/proc/$pid/cmdline" 2>/dev/null; then
    for ((i = 0; i + 1 < ${#args[@]}; i++)); do
      if [[ ${args[i]} == -http-addr ]]; then
        printf '%s' "${args[i + 1]##*:}"
        return 0
      fi
    done
  fi
  printf '%s' "$STRIPE_MOCK_PORT"
}

stripe-mock_install() {
  if [[ ! -x $STRIPE_MOCK_BIN ]]; then
    command -v go >/dev/null 2>&1 ||
      die "stripe-mock: Go 1.22 or newer must be on PATH to build $STRIPE_MOCK_MODULE@$STRIPE_MOCK_VERSION"
    local staging=$STRIPE_MOCK_DIR/.build
    rm -rf "$staging"
    mkdir -p "$staging"
    log "stripe-mock: building $STRIPE_MOCK_MODULE@$STRIPE_MOCK_VERSION with go install (modules cached in Go's module cache)"
    # The spec, fixtures and TLS certificate are embedded: the binary needs no network at run time.
    # CGO_ENABLED=0 as in stripe-mock's own releases: a static binary, no C compiler needed.
    if ! (cd "$staging" && exec env GOBIN="$staging" CGO_ENABLED=0 \
      go install -ldflags="-X main.version=$STRIPE_MOCK_VERSION" "$STRIPE_MOCK_MODULE@$STRIPE_MOCK_VERSION") \
      >"$STRIPE_MOCK_DIR/build.log" 2>&1 </dev/null 9>&-; then
      tail -n 40 "$STRIPE_MOCK_DIR/build.log" >&2
      die "stripe-mock: go install failed (full output: $STRIPE_MOCK_DIR/build.log)"
    fi
    mkdir -p "$STRIPE_MOCK_HOME"
    mv "$staging/stripe-mock" "$STRIPE_MOCK_BIN"
    rm -rf "$staging"
  fi
  ensure_cmd curl curl
}

stripe-mock_start() {
  if stripe-mock_alive; then
    log "stripe-mock: already running (pid $(stripe-mock_pid), port $(stripe-mock_port))"
    return 0
  fi
  rm -f "$STRIPE_MOCK_PID_FILE"
  check_port_free stripe-mock "$STRIPE_MOCK_PORT" STRIPE_MOCK_PORT
  mkdir -p "$STRIPE_MOCK_DIR"
  stripe-mock_install

  local i
  log "stripe-mock: starting on 127.0.0.1:$STRIPE_MOCK_PORT (HTTP)"
  # As for Kafka: own session, and the inner shell's pid (recorded) becomes stripe-mock's by `exec`.
  # -https-addr: with -http-addr alone stripe-mock also opens HTTPS on *:12112 (its "HTTP asked for"
  # test ignores -http-addr); we keep that unused listener on a loopback port the system picks.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid nohup bash -c 'echo "$$" >"$1"; shift; exec "$@"' _ "$STRIPE_MOCK_PID_FILE" \
    "$STRIPE_MOCK_BIN" -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" -https-addr 127.0.0.1:0 \
    >"$STRIPE_MOCK_LOG" 2>&1 </dev/null 9>&- &
  for ((i = 0; i < 50; i++)); do
    [[ -s $STRIPE_MOCK_PID_FILE ]] && break
    sleep 0.1
  done
}

stripe-mock_ready() {
  curl -fsS --max-time 5 -o /dev/null -H "Authorization: Bearer $STRIPE_MOCK_API_KEY" \
    "http://127.0.0.1:$(stripe-mock_port)/v1/payment_intents" 2>/dev/null
}

stripe-mock_wait() {
  wait_ready stripe-mock stripe-mock_ready
  log "stripe-mock: ready on http://127.0.0.1:$(stripe-mock_port)"
}

stripe-mock_stop() {
  if stripe-mock_alive; then stop_pid stripe-mock "$(stripe-mock_pid)" 10; else log "stripe-mock: not running"; fi
  rm -f "$STRIPE_MOCK_PID_FILE"
}

# === commands ==================================================================================

normalize() { # NAME -> canonical server name
  case $1 in
  kafka) echo kafka ;;
  kafka-cluster) echo kafka-cluster ;;
  postgres | postgresql | pg) echo postgres ;;
  elasticsearch | es) echo elasticsearch ;;
  stripe-mock | stripe_mock) echo stripe-mock ;;
  *) die "unknown server '$1' (expected: kafka, kafka-cluster, postgres, elasticsearch, stripe-mock)" ;;
  esac
}

SERVERS=()
select_servers() { # NAMES... (none: all)
  SERVERS=()
  local name
  if (($# == 0)); then
    SERVERS=("${ALL_SERVERS[@]}")
    return 0
  fi
  for name in "$@"; do SERVERS+=("$(normalize "$name")"); done
}

cmd_up() {
  require_root
  if (($# == 0)); then set -- "${DEFAULT_SERVERS[@]}"; fi
  select_servers "$@"
  take_lock
  local name
  # Launch everything first, then wait: the JVMs start in parallel.
  for name in "${SERVERS[@]}"; do "${name}_start"; done
  for name in "${SERVERS[@]}"; do "${name}_wait"; done
}

cmd_down() {
  require_root
  select_servers "$@"
  take_lock
  local name
  for name in "${SERVERS[@]}"; do "${name}_stop"; done
}

cmd_status() {
  local name state port pid
  for name in "${ALL_SERVERS[@]}"; do
    port=$("${name}_port")
    if declare -F "${name}_state" >/dev/null; then
      state=$("${name}_state")
      pid=$("${name}_pid")
    elif "${name}_alive"; then
      pid=$("${name}_pid")
      state=running
    else
      pid=''
      state=stopped
    fi
    printf '%-14s %-8s 127.0.0.1:%s%s\n' "$name" "$state" "$port" "${pid:+  pid $pid}"
  done
}

cluster_node() { # NAME: the node number of kafka-1..kafka-3, else fails
  [[ $1 =~ ^kafka-([0-9]+)$ ]] || return 1
  local node
  for node in "${KAFKA_CLUSTER_NODES[@]}"; do
    if [[ $node == "${BASH_REMATCH[1]}" ]]; then
      printf '%s' "$node"
      return 0
    fi
  done
  return 1
}

cmd_logs() {
  (($# >= 1)) || die "usage: infra/stack.sh logs SERVER [LINES]"
  local name file node
  if node=$(cluster_node "$1"); then
    name=$1
    file=$(kafka_node_log_file "$node")
  else
    name=$(normalize "$1")
    file=$("${name}_log_file")
  fi
  [[ -f $file ]] || die "$name: no log yet ($file)"
  tail -n "${2:-50}" "$file"
}

# Debian packages of the programs that `./run` starts itself (the edge, Prometheus) or the tests drive.
declare -A TOOL_PACKAGES=([nginx]="nginx-light" [prometheus]="prometheus" [chromium]="chromium chromium-driver")

cmd_tools() { # TOOL...
  require_root
  local tool missing=()
  for tool in "$@"; do
    [[ -n ${TOOL_PACKAGES[$tool]:-} ]] || die "unknown tool '$tool' (expected: ${!TOOL_PACKAGES[*]})"
    command -v "$tool" >/dev/null 2>&1 || read -r -a missing <<<"${missing[*]} ${TOOL_PACKAGES[$tool]}"
  done
  ((${#missing[@]} == 0)) && return 0
  take_lock
  # shellcheck disable=SC2068 # package names are single words
  apt_install ${missing[@]}
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || die "'$tool' still missing after installing its package"; done
}

cmd_kill() { # SERVER: SIGKILL, no grace, as a crash (the fault tests); kafka-N: one node of the cluster
  (($# == 1)) || die "usage: infra/stack.sh kill SERVER"
  local name pids pid node killed=''
  if node=$(cluster_node "$1"); then
    name=$1
    if kafka_node_alive "$node"; then pids=$(kafka_node_pid "$node"); else pids=''; fi
  else
    name=$(normalize "$1")
    pids=$("${name}_pid") # kafka-cluster: every running node's
  fi
  for pid in $pids; do
    pid_running "$pid" || continue
    kill -KILL "$pid" 2>/dev/null || true
    while pid_running "$pid"; do sleep 0.1; done
    killed+=" $pid"
  done
  if [[ -n $killed ]]; then log "$name: killed (pid$killed)"; else log "$name: not running"; fi
}

main() {
  local command=${1:-}
  (($# > 0)) && shift
  case $command in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  start | stop)
    (($# == 1)) || die "usage: infra/stack.sh $command SERVER"
    if [[ $command == start ]]; then cmd_up "$1"; else cmd_down "$1"; fi
    ;;
  restart)
    cmd_down "$@"
    cmd_up "$@"
    ;;
  kill) cmd_kill "$@" ;;
  tools) cmd_tools "$@" ;;
  status) cmd_status ;;
  logs) cmd_logs "$@" ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
