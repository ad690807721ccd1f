#!/usr/bin/env bash
# Real services for Pushline's integration tests: a Redis server and a single-node KRaft Kafka broker,
# both on free 127.0.0.1 ports, with all state under .services/ in the repo root.
#
#   scripts/services.sh up            install/build what is missing, start both, write and print .services/env
#   scripts/services.sh down          stop both (SIGTERM, then SIGKILL after a timeout), remove .services/
#   scripts/services.sh status        show what runs; exit 0 only if both are up
#   scripts/services.sh kafka-stop    stop the broker, keep its ports, config and data
#   scripts/services.sh kafka-start   start the same broker again (same ports, same data)
#   scripts/services.sh redis-stop    stop redis, keep its port
#   scripts/services.sh redis-start   start redis again on the same port (it keeps no data: persistence is off)
#
# The highly available shape (failover tests, bench/failover.ts), apart from the above:
#   scripts/services.sh ha-up              a Redis primary + one replica + three Sentinels and a three-broker KRaft
#                                          Kafka cluster, all on 127.0.0.1; writes and prints .services/ha/env
#   scripts/services.sh ha-down            stop them all, remove .services/ha/ (`down` stops them too)
#   scripts/services.sh ha-status          show what runs and which server is primary; exit 0 only if all eight run
#   scripts/services.sh ha-redis-start N   start Redis server N (1 or 2) again after it was killed, as a replica of
#                                          whichever server the Sentinels name primary now
#   scripts/services.sh ha-kafka-start N   start Kafka broker N (1..3) again with its data
# .services/ha/env:
#   PUSHLINE_TEST_HA_SENTINELS=127.0.0.1:<port>,127.0.0.1:<port>,127.0.0.1:<port>
#   PUSHLINE_TEST_HA_SENTINEL_MASTER=pushline
#   PUSHLINE_TEST_HA_REDIS_PORTS=<server 1>,<server 2>        (server 1 starts as the primary)
#   PUSHLINE_TEST_HA_KAFKA_BROKERS=127.0.0.1:<port>,...       (the Nth is broker N, node.id N)
#   PUSHLINE_TEST_HA_DIR=<.services/ha: redis-N/redis.pid, sentinel-N/sentinel.pid, kafka-N/kafka.pid>
#   PUSHLINE_TEST_SERVICES=<this script>
# HA tunables: HA_KAFKA_HEAP_OPTS (default "-Xms128m -Xmx384m"), HA_SENTINEL_DOWN_AFTER_MS (default 1000: how
# long the primary must be silent before the Sentinels fail over).
#
# .services/env holds KEY=VALUE lines (no quotes, no export):
#   PUSHLINE_TEST_REDIS_URL=redis://127.0.0.1:<port>
#   PUSHLINE_TEST_KAFKA_BROKERS=127.0.0.1:<port>
#   PUSHLINE_TEST_KAFKA_DIR=<dir holding server.properties, data/, kafka.log>
#   PUSHLINE_TEST_SERVICES=<absolute path of this script, for the *-stop / *-start subcommands>
#
# Tunables (environment): SERVICES_START_TIMEOUT (s, default 90), SERVICES_STOP_TIMEOUT (s, default 15),
# KAFKA_HEAP_OPTS (default "-Xms256m -Xmx768m"), JAVA_HOME.
# Needs only bash (+ coreutils), node, java (17+), mvn and apt-get (which also installs chromium for the browser test).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STATE="$ROOT/.services"
ENV_FILE="$STATE/env"
KDIR="$STATE/kafka"
RDIR="$STATE/redis"
KAFKA_LIB="$ROOT/kafka/lib"
START_TIMEOUT="${SERVICES_START_TIMEOUT:-90}"
STOP_TIMEOUT="${SERVICES_STOP_TIMEOUT:-15}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

log() { echo "services: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Serialize concurrent invocations (e.g. parallel test workers calling `up`). fd 9 is closed for the daemons.
if command -v flock >/dev/null 2>&1; then
  LOCK="${TMPDIR:-/tmp}/pushline-services-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).lock"
  exec 9>"$LOCK"
  flock 9
fi

# ---------------------------------------------------------------- process helpers

# alive PIDFILE PATTERN: true if the pid in PIDFILE is a live (non-zombie) process whose cmdline contains PATTERN
alive() {
  local pidfile="$1" pattern="$2" pid state
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/stat" ]] || return 1
  state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != "Z" && "$state" != "X" ]] || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "$pattern"
}

# stop_proc NAME PIDFILE PATTERN: SIGTERM, wait up to STOP_TIMEOUT s, then SIGKILL
stop_proc() {
  local name="$1" pidfile="$2" pattern="$3" pid i
  if ! alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    alive "$pidfile" "$pattern" || break
    sleep 0.1
  done
  if alive "$pidfile" "$pattern"; then
    log "$name did not stop within ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$pidfile" "$pattern" || break
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
}

# spawn PIDFILE LOGFILE CMD...: start CMD detached (own session, stdin /dev/null, output appended to LOGFILE)
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  else
    nohup "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  fi
  echo $! >"$pidfile"
}

free_ports() { # free_ports N: N distinct free TCP ports on 127.0.0.1
  node -e '
    const net = require("net"); const n = +process.argv[1]; const srvs = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer(); srvs.push(s);
      s.listen(0, "127.0.0.1", () => {
        if (srvs.every((x) => x.listening)) {
          console.log(srvs.map((x) => x.address().port).join(" "));
          srvs.forEach((x) => x.close());
        }
      });
    }' "$1"
}

tcp_open() { # tcp_open PORT: true if 127.0.0.1:PORT accepts a connection
  node -e '
    const s = require("net").connect(+process.argv[1], "127.0.0.1");
    s.setTimeout(2000, () => process.exit(1));
    s.on("connect", () => { s.end(); process.exit(0); });
    s.on("error", () => process.exit(1));' "$1"
}

# ---------------------------------------------------------------- install / build

ensure_redis_installed() {
  # mosquitto-clients: tests check the broker with a standard MQTT 3.1.1 client besides MQTT.js;
  # mosquitto: the reference broker of the benchmarks.
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 &&
    command -v mosquitto_pub >/dev/null 2>&1 && command -v mosquitto >/dev/null 2>&1; then return 0; fi
  log "installing redis-server, mosquitto and mosquitto-clients from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends redis-server redis-tools mosquitto mosquitto-clients >&2
  # The Debian package may start its own service on 6379 (policy-rc.d permitting); we never use it.
}

ensure_chromium_installed() {
  # Debian's chromium: the headless browser of the dashboard's end-to-end test (driven by playwright-core).
  if command -v chromium >/dev/null 2>&1; then return 0; fi
  log "installing chromium from apt (for the dashboard's browser test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends chromium >&2
}

ensure_kafka_jars() {
  # Rebuild when lib/ has no broker jar, or when it was built by this script from a different pom.xml
  # (lib/.pom.xml is the pom it was built from; a lib/ made by a plain `mvn package` has none and is kept).
  if compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null &&
    { [[ ! -e "$KAFKA_LIB/.pom.xml" ]] || cmp -s "$ROOT/kafka/pom.xml" "$KAFKA_LIB/.pom.xml"; }; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (apt-get install -y maven)"
  log "resolving Kafka jars with Maven into kafka/lib"
  rm -rf "$KAFKA_LIB"
  mvn -B -q -Dstyle.color=never -f "$ROOT/kafka/pom.xml" package >&2
  compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null || die "mvn package did not produce kafka/lib/kafka_2.13-*.jar"
  cp "$ROOT/kafka/pom.xml" "$KAFKA_LIB/.pom.xml"
}

# ---------------------------------------------------------------- redis

redis_port() { cat "$RDIR/port"; }
redis_alive() { alive "$RDIR/redis.pid" redis-server; }

redis_ping() {
  [[ "$(redis-cli -h 127.0.0.1 -p "$(redis_port)" --no-raw ping 2>/dev/null || true)" == *PONG* ]]
}

redis_launch() {
  local port
  port="$(redis_port)"
  mkdir -p "$RDIR/data"
  echo "---- $(date -u +%FT%TZ) start on 127.0.0.1:$port" >>"$RDIR/redis.log"
  # No persistence (--save '' / appendonly no); pubsub 0 0 0 = never disconnect slow pub/sub subscribers
  # (the default 32mb/8mb/60s limit drops subscribers, i.e. loses messages, under load).
  spawn "$RDIR/redis.pid" "$RDIR/redis.log" \
    redis-server --bind 127.0.0.1 --port "$port" --daemonize no --logfile '' \
    --save '' --appendonly no --client-output-buffer-limit 'pubsub 0 0 0' \
    --dir "$RDIR/data" --dbfilename dump.rdb
}

redis_wait() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    redis_ping && return 0
    if ! redis_alive; then
      log "redis-server exited during startup; log tail:"
      tail -n 40 "$RDIR/redis.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "redis did not answer PING within ${START_TIMEOUT}s; log tail:"
  tail -n 40 "$RDIR/redis.log" >&2 || true
  return 1
}

redis_start() {
  [[ -s "$RDIR/port" ]] || die "no redis state in $RDIR: run 'scripts/services.sh up' first"
  if redis_alive; then return 0; fi
  redis_launch
  redis_wait || { stop_proc redis "$RDIR/redis.pid" redis-server; return 1; }
  log "redis up on 127.0.0.1:$(redis_port) (pid $(cat "$RDIR/redis.pid"))"
}

redis_stop() { stop_proc redis "$RDIR/redis.pid" redis-server; }

# ---------------------------------------------------------------- kafka

kafka_port() { cat "$KDIR/port"; }
kafka_alive() { alive "$KDIR/kafka.pid" kafka.Kafka; }

kafka_new_cluster_id() {
  # Cluster id = Kafka Uuid form (base64url of 16 random bytes); avoid a leading '-' (argparse would read an option).
  node -e '
    let s; do { s = require("crypto").randomBytes(16).toString("base64url"); } while (s.startsWith("-"));
    console.log(s);'
}

# kafka_write_config DIR NODE_ID PORT CPORT QUORUM REPLICAS CLUSTER_ID [--standalone]: write DIR/server.properties
# (QUORUM: the controller.quorum.* line; REPLICAS: of Kafka's internal topics) and format DIR/data.
kafka_write_config() {
  local dir="$1" id="$2" port="$3" cport="$4" quorum="$5" replicas="$6" cid="$7" standalone="${8:-}" min_isr=1
  ((replicas >= 3)) && min_isr=2
  mkdir -p "$dir/data" "$dir/logs"
  echo "$port" >"$dir/port"
  cat >"$dir/server.properties" <<EOF
# generated by scripts/services.sh
process.roles=broker,controller
node.id=$id
$quorum
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
EOF
  if ((replicas > 1)); then
    # A killed broker is fenced within seconds (default 9 s), so its partitions get new leaders quickly.
    printf '%s\n' broker.session.timeout.ms=3000 broker.heartbeat.interval.ms=500 >>"$dir/server.properties"
  fi
  if ! "$JAVA" -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$ROOT/kafka/log4j2.yaml" -cp "$KAFKA_LIB/*" \
    kafka.tools.StorageTool format ${standalone:+"$standalone"} -t "$cid" -c "$dir/server.properties" \
    >"$dir/format.log" 2>&1; then
    cat "$dir/format.log" >&2
    die "kafka storage format failed in $dir"
  fi
}

kafka_configure() { # kafka_configure PORT CPORT: the single broker
  local cid
  cid="$(kafka_new_cluster_id)"
  echo "$cid" >"$KDIR/cluster-id"
  echo "$2" >"$KDIR/controller-port"
  kafka_write_config "$KDIR" 1 "$1" "$2" "controller.quorum.bootstrap.servers=127.0.0.1:$2" 1 "$cid" --standalone
}

kafka_launch_in() { # kafka_launch_in DIR HEAP_OPTS
  local dir="$1" heap
  read -r -a heap <<<"$2"
  echo "---- $(date -u +%FT%TZ) start on 127.0.0.1:$(cat "$dir/port")" >>"$dir/kafka.log"
  # byte offset where this run's output starts (readiness looks only past it)
  stat -c %s "$dir/kafka.log" >"$dir/log-offset"
  spawn "$dir/kafka.pid" "$dir/kafka.log" \
    "$JAVA" "${heap[@]}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$ROOT/kafka/log4j2.yaml" \
    -Dkafka.logs.dir="$dir/logs" -cp "$KAFKA_LIB/*" kafka.Kafka "$dir/server.properties"
}

kafka_wait_in() { # kafka_wait_in DIR NAME
  local dir="$1" name="$2" deadline=$((SECONDS + START_TIMEOUT)) offset
  offset="$(cat "$dir/log-offset")"
  while ((SECONDS < deadline)); do
    if tail -c +"$((offset + 1))" "$dir/kafka.log" | grep -q "Kafka Server started" && tcp_open "$(cat "$dir/port")"; then
      return 0
    fi
    if ! alive "$dir/kafka.pid" kafka.Kafka; then
      log "$name exited during startup; log tail:"
      tail -n 60 "$dir/kafka.log" >&2 || true
      return 1
    fi
    sleep 0.25
  done
  log "$name not ready within ${START_TIMEOUT}s; log tail:"
  tail -n 60 "$dir/kafka.log" >&2 || true
  return 1
}

kafka_launch() { kafka_launch_in "$KDIR" "${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"; }
kafka_wait() { kafka_wait_in "$KDIR" kafka; }

kafka_start() {
  [[ -s "$KDIR/server.properties" ]] || die "no kafka state in $KDIR: run 'scripts/services.sh up' first"
  if kafka_alive; then return 0; fi
  ensure_kafka_jars
  kafka_launch
  kafka_wait || { stop_proc kafka "$KDIR/kafka.pid" kafka.Kafka; return 1; }
  log "kafka up on 127.0.0.1:$(kafka_port) (pid $(cat "$KDIR/kafka.pid"))"
}

kafka_stop() { stop_proc kafka "$KDIR/kafka.pid" kafka.Kafka; }

# ---------------------------------------------------------------- highly available shape

HA="$STATE/ha"
HA_ENV="$HA/env"
HA_MASTER=pushline
HA_DOWN_AFTER_MS="${HA_SENTINEL_DOWN_AFTER_MS:-1000}"

ha_redis_launch() { # ha_redis_launch N [REPLICAOF_PORT]
  local n="$1" of="${2:-}" dir="$HA/redis-$1" port
  port="$(cat "$dir/port")"
  mkdir -p "$dir/data"
  echo "---- $(date -u +%FT%TZ) start on 127.0.0.1:$port${of:+ as replica of $of}" >>"$dir/redis.log"
  # As the single Redis above (no persistence, pubsub 0 0 0). A server without persistence must never come back
  # empty as the primary: ha-redis-start restarts a server as a replica of the current primary.
  local replicaof=()
  [[ -n "$of" ]] && replicaof=(--replicaof 127.0.0.1 "$of")
  spawn "$dir/redis.pid" "$dir/redis.log" \
    redis-server --bind 127.0.0.1 --port "$port" --daemonize no --logfile '' \
    --save '' --appendonly no --client-output-buffer-limit 'pubsub 0 0 0' \
    --repl-diskless-sync yes --repl-diskless-sync-delay 0 \
    --dir "$dir/data" "${replicaof[@]}"
}

ha_sentinel_launch() { # ha_sentinel_launch N PRIMARY_PORT (the config is written once; Sentinel rewrites it)
  local n="$1" dir="$HA/sentinel-$1" port
  port="$(cat "$dir/port")"
  if [[ ! -s "$dir/sentinel.conf" ]]; then
    cat >"$dir/sentinel.conf" <<EOF
bind 127.0.0.1
port $port
daemonize no
logfile ""
dir $dir
sentinel monitor $HA_MASTER 127.0.0.1 $2 2
sentinel down-after-milliseconds $HA_MASTER $HA_DOWN_AFTER_MS
sentinel failover-timeout $HA_MASTER 10000
sentinel parallel-syncs $HA_MASTER 1
EOF
  fi
  echo "---- $(date -u +%FT%TZ) start on 127.0.0.1:$port" >>"$dir/sentinel.log"
  spawn "$dir/sentinel.pid" "$dir/sentinel.log" redis-server "$dir/sentinel.conf" --sentinel
}

ha_kafka_configure() { # ha_kafka_configure N PORT  (controller ports in $HA/controller-ports, cluster id in $HA/cluster-id)
  local n="$1" voters="" i=1 cp
  for cp in $(cat "$HA/controller-ports"); do
    voters+="${voters:+,}$i@127.0.0.1:$cp"
    i=$((i + 1))
  done
  kafka_write_config "$HA/kafka-$n" "$n" "$2" "$(cut -d' ' -f"$n" <"$HA/controller-ports")" \
    "controller.quorum.voters=$voters" 3 "$(cat "$HA/cluster-id")"
}

ha_kafka_launch() { kafka_launch_in "$HA/kafka-$1" "${HA_KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}"; }
ha_kafka_wait() { kafka_wait_in "$HA/kafka-$1" "kafka broker $1"; }

ha_wait_ping() { # ha_wait_ping WHAT PORT
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    [[ "$(redis-cli -h 127.0.0.1 -p "$2" --no-raw ping 2>/dev/null || true)" == *PONG* ]] && return 0
    sleep 0.1
  done
  log "$1 did not answer PING within ${START_TIMEOUT}s"
  return 1
}

ha_primary_port() { # the port the Sentinels name primary now (asks each until one answers)
  local n reply
  for n in 1 2 3; do
    reply="$(redis-cli -h 127.0.0.1 -p "$(cat "$HA/sentinel-$n/port")" --raw sentinel get-master-addr-by-name "$HA_MASTER" 2>/dev/null | tail -n 1 || true)"
    if [[ "$reply" =~ ^[0-9]+$ ]]; then echo "$reply"; return 0; fi
  done
  return 1
}

ha_wait_replica_synced() { # ha_wait_replica_synced PORT: the replica on PORT has finished its sync with the primary
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    redis-cli -h 127.0.0.1 -p "$1" info replication 2>/dev/null | grep -q '^master_link_status:up' && return 0
    sleep 0.1
  done
  log "redis replica on $1 did not sync within ${START_TIMEOUT}s"
  return 1
}

ha_wait_sentinels_ready() { # every Sentinel knows the replica and the two other Sentinels (so a failover can happen)
  local deadline=$((SECONDS + START_TIMEOUT)) n port ok
  while ((SECONDS < deadline)); do
    ok=1
    for n in 1 2 3; do
      port="$(cat "$HA/sentinel-$n/port")"
      [[ "$(redis-cli -h 127.0.0.1 -p "$port" sentinel master "$HA_MASTER" 2>/dev/null | grep -A1 -x 'num-slaves' | tail -n 1)" -ge 1 ]] 2>/dev/null || ok=0
      [[ "$(redis-cli -h 127.0.0.1 -p "$port" sentinel master "$HA_MASTER" 2>/dev/null | grep -A1 -x 'num-other-sentinels' | tail -n 1)" -ge 2 ]] 2>/dev/null || ok=0
    done
    ((ok)) && return 0
    sleep 0.2
  done
  log "the Sentinels did not discover the replica and each other within ${START_TIMEOUT}s"
  return 1
}

ha_redis_start() { # ha_redis_start N: again, as a replica of the current primary
  local n="$1" dir="$HA/redis-$1" primary port
  [[ -s "$dir/port" ]] || die "no HA redis $n: run 'scripts/services.sh ha-up' first"
  alive "$dir/redis.pid" redis-server && return 0
  port="$(cat "$dir/port")"
  primary="$(ha_primary_port)" || die "no Sentinel names a primary"
  [[ "$primary" != "$port" ]] || die "the Sentinels still name redis $n primary: wait for the failover first"
  ha_redis_launch "$n" "$primary"
  ha_wait_ping "redis $n" "$port" || die "redis $n failed to start"
  ha_wait_replica_synced "$port" || die "redis $n did not sync"
  ha_wait_sentinels_ready || die "the Sentinels do not see redis $n"
  log "redis $n up on 127.0.0.1:$port as replica of $primary"
}

ha_kafka_start() { # ha_kafka_start N
  local dir="$HA/kafka-$1"
  [[ -s "$dir/server.properties" ]] || die "no HA kafka broker $1: run 'scripts/services.sh ha-up' first"
  alive "$dir/kafka.pid" kafka.Kafka && return 0
  ha_kafka_launch "$1"
  ha_kafka_wait "$1" || die "kafka broker $1 failed to start"
  log "kafka broker $1 up on 127.0.0.1:$(cat "$dir/port")"
}

ha_write_env() {
  local s="" k="" n
  for n in 1 2 3; do
    s+="${s:+,}127.0.0.1:$(cat "$HA/sentinel-$n/port")"
    k+="${k:+,}127.0.0.1:$(cat "$HA/kafka-$n/port")"
  done
  cat >"$HA_ENV.tmp" <<EOF
PUSHLINE_TEST_HA_SENTINELS=$s
PUSHLINE_TEST_HA_SENTINEL_MASTER=$HA_MASTER
PUSHLINE_TEST_HA_REDIS_PORTS=$(cat "$HA/redis-1/port"),$(cat "$HA/redis-2/port")
PUSHLINE_TEST_HA_KAFKA_BROKERS=$k
PUSHLINE_TEST_HA_DIR=$HA
PUSHLINE_TEST_SERVICES=$ROOT/scripts/services.sh
EOF
  mv "$HA_ENV.tmp" "$HA_ENV"
}

ha_stop_all() {
  [[ -d "$HA" ]] || return 0
  local n
  for n in 1 2 3; do stop_proc "kafka broker $n" "$HA/kafka-$n/kafka.pid" kafka.Kafka & done
  wait
  for n in 1 2 3; do stop_proc "sentinel $n" "$HA/sentinel-$n/sentinel.pid" redis-server; done
  for n in 1 2; do stop_proc "redis $n" "$HA/redis-$n/redis.pid" redis-server; done
}

cmd_ha_status() {
  local rc=0 n
  if [[ ! -d "$HA" ]]; then
    echo "ha: not set up"
    return 1
  fi
  for n in 1 2; do
    if alive "$HA/redis-$n/redis.pid" redis-server; then echo "redis $n: running 127.0.0.1:$(cat "$HA/redis-$n/port")"; else
      echo "redis $n: stopped"
      rc=1
    fi
  done
  for n in 1 2 3; do
    if alive "$HA/sentinel-$n/sentinel.pid" redis-server; then echo "sentinel $n: running 127.0.0.1:$(cat "$HA/sentinel-$n/port")"; else
      echo "sentinel $n: stopped"
      rc=1
    fi
  done
  for n in 1 2 3; do
    if alive "$HA/kafka-$n/kafka.pid" kafka.Kafka; then echo "kafka $n: running 127.0.0.1:$(cat "$HA/kafka-$n/port")"; else
      echo "kafka $n: stopped"
      rc=1
    fi
  done
  echo "primary: 127.0.0.1:$(ha_primary_port || echo unknown)"
  return "$rc"
}

cmd_ha_up() {
  if [[ -s "$HA_ENV" ]] && cmd_ha_status >/dev/null; then
    cat "$HA_ENV"
    return 0
  fi
  ha_stop_all
  rm -rf "$HA"
  ensure_redis_installed
  ensure_kafka_jars
  "$JAVA" -version >/dev/null 2>&1 || die "java not found (need 17+)"
  local ports n
  read -r -a ports <<<"$(free_ports 11)"
  mkdir -p "$HA"
  for n in 1 2; do mkdir -p "$HA/redis-$n" && echo "${ports[$((n - 1))]}" >"$HA/redis-$n/port"; done
  for n in 1 2 3; do mkdir -p "$HA/sentinel-$n" && echo "${ports[$((n + 1))]}" >"$HA/sentinel-$n/port"; done
  echo "${ports[8]} ${ports[9]} ${ports[10]}" >"$HA/controller-ports"
  kafka_new_cluster_id >"$HA/cluster-id"
  for n in 1 2 3; do ha_kafka_configure "$n" "${ports[$((n + 4))]}"; done
  for n in 1 2 3; do ha_kafka_launch "$n"; done # the brokers start while Redis and the Sentinels come up
  ha_redis_launch 1
  ha_wait_ping "redis 1" "$(cat "$HA/redis-1/port")" || { ha_stop_all; die "redis 1 failed to start"; }
  ha_redis_launch 2 "$(cat "$HA/redis-1/port")"
  ha_wait_ping "redis 2" "$(cat "$HA/redis-2/port")" || { ha_stop_all; die "redis 2 failed to start"; }
  ha_wait_replica_synced "$(cat "$HA/redis-2/port")" || { ha_stop_all; die "redis 2 did not sync"; }
  for n in 1 2 3; do ha_sentinel_launch "$n" "$(cat "$HA/redis-1/port")"; done
  for n in 1 2 3; do ha_wait_ping "sentinel $n" "$(cat "$HA/sentinel-$n/port")" || { ha_stop_all; die "sentinel $n failed to start"; }; done
  ha_wait_sentinels_ready || { ha_stop_all; die "sentinels not ready"; }
  for n in 1 2 3; do ha_kafka_wait "$n" || { ha_stop_all; die "kafka broker $n failed to start"; }; done
  ha_write_env
  cat "$HA_ENV"
}

cmd_ha_down() {
  ha_stop_all
  rm -rf "$HA"
  log "ha down"
}

# ---------------------------------------------------------------- commands

write_env() {
  cat >"$ENV_FILE.tmp" <<EOF
PUSHLINE_TEST_REDIS_URL=redis://127.0.0.1:$(redis_port)
PUSHLINE_TEST_KAFKA_BROKERS=127.0.0.1:$(kafka_port)
PUSHLINE_TEST_KAFKA_DIR=$KDIR
PUSHLINE_TEST_SERVICES=$ROOT/scripts/services.sh
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

stop_all() {
  [[ -d "$STATE" ]] || return 0
  ha_stop_all
  kafka_stop
  redis_stop
}

cmd_up() {
  if [[ -s "$ENV_FILE" ]]; then
    # Already set up: restart whatever is down (same ports, same data), then print the env.
    if ! redis_alive || ! kafka_alive; then
      ensure_redis_installed
      redis_start || die "redis failed to start"
      kafka_start || die "kafka failed to start"
    fi
    cat "$ENV_FILE"
    return 0
  fi
  # Leftovers of a failed `up`: clean them away.
  stop_all
  rm -rf "$STATE"

  ensure_redis_installed
  ensure_chromium_installed
  ensure_kafka_jars
  command -v node >/dev/null 2>&1 || die "node not found"
  "$JAVA" -version >/dev/null 2>&1 || die "java not found (need 17+)"

  mkdir -p "$RDIR" "$KDIR"
  local ports rport kport cport
  ports="$(free_ports 3)"
  read -r rport kport cport <<<"$ports"
  echo "$rport" >"$RDIR/port"

  redis_launch
  kafka_configure "$kport" "$cport"
  kafka_launch # redis and kafka start concurrently
  if ! redis_wait; then stop_all; die "redis failed to start (state kept in $STATE)"; fi
  if ! kafka_wait; then stop_all; die "kafka failed to start (state kept in $STATE)"; fi
  log "redis pid $(cat "$RDIR/redis.pid"), kafka pid $(cat "$KDIR/kafka.pid")"
  write_env
  cat "$ENV_FILE"
}

cmd_down() {
  stop_all
  rm -rf "$STATE"
  log "down"
}

cmd_status() {
  local rc=0
  if [[ ! -d "$STATE" ]]; then
    echo "redis: not set up"
    echo "kafka: not set up"
    return 1
  fi
  if redis_alive; then echo "redis: running pid $(cat "$RDIR/redis.pid") 127.0.0.1:$(redis_port)"; else
    echo "redis: stopped"
    rc=1
  fi
  if kafka_alive; then echo "kafka: running pid $(cat "$KDIR/kafka.pid") 127.0.0.1:$(kafka_port)"; else
    echo "kafka: stopped"
    rc=1
  fi
  return "$rc"
}

usage() {
  echo "usage: $0 up|down|status|kafka-stop|kafka-start|redis-stop|redis-start|ha-up|ha-down|ha-status|ha-redis-start N|ha-kafka-start N" >&2
  exit 2
}

[[ $# -eq 1 || ($# -eq 2 && "$1" == ha-*-start) ]] || usage
case "$1" in
  ha-up) cmd_ha_up ;;
  ha-down) cmd_ha_down ;;
  ha-status) cmd_ha_status ;;
  ha-redis-start)
    [[ "$2" =~ ^[12]$ ]] || usage
    ha_redis_start "$2"
    ;;
  ha-kafka-start)
    [[ "$2" =~ ^[123]$ ]] || usage
    ha_kafka_start "$2"
    ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kafka-stop) kafka_stop ;;
  kafka-start) kafka_start ;;
  redis-stop) redis_stop ;;
  redis-start)
    command -v redis-server >/dev/null 2>&1 || die "redis-server not installed: run 'scripts/services.sh up' first"
    redis_start
    ;;
  *) usage ;;
esac
