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

kafka_configure() { # kafka_configure PORT CPORT: write server.properties and format the storage
  local port="$1" cport="$2" cid
  mkdir -p "$KDIR/data" "$KDIR/logs"
  echo "$port" >"$KDIR/port"
  echo "$cport" >"$KDIR/controller-port"
  cat >"$KDIR/server.properties" <<EOF
# generated by scripts/services.sh
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KDIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  # Cluster id = Kafka Uuid form (base64url of 16 random bytes); avoid a leading '-' (argparse would read an option).
  cid="$(node -e '
    let s; do { s = require("crypto").randomBytes(16).toString("base64url"); } while (s.startsWith("-"));
    console.log(s);')"
  echo "$cid" >"$KDIR/cluster-id"
  if ! "$JAVA" -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$ROOT/kafka/log4j2.yaml" -cp "$KAFKA_LIB/*" \
    kafka.tools.StorageTool format --standalone -t "$cid" -c "$KDIR/server.properties" \
    >"$KDIR/format.log" 2>&1; then
    cat "$KDIR/format.log" >&2
    die "kafka storage format failed"
  fi
}

kafka_launch() {
  local heap
  read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
  echo "---- $(date -u +%FT%TZ) start on 127.0.0.1:$(kafka_port)" >>"$KDIR/kafka.log"
  # byte offset where this run's output starts (readiness looks only past it)
  stat -c %s "$KDIR/kafka.log" >"$KDIR/log-offset"
  spawn "$KDIR/kafka.pid" "$KDIR/kafka.log" \
    "$JAVA" "${heap[@]}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$ROOT/kafka/log4j2.yaml" \
    -Dkafka.logs.dir="$KDIR/logs" -cp "$KAFKA_LIB/*" kafka.Kafka "$KDIR/server.properties"
}

kafka_wait() {
  local deadline=$((SECONDS + START_TIMEOUT)) offset
  offset="$(cat "$KDIR/log-offset")"
  while ((SECONDS < deadline)); do
    if tail -c +"$((offset + 1))" "$KDIR/kafka.log" | grep -q "Kafka Server started" && tcp_open "$(kafka_port)"; then
      return 0
    fi
    if ! kafka_alive; then
      log "kafka exited during startup; log tail:"
      tail -n 60 "$KDIR/kafka.log" >&2 || true
      return 1
    fi
    sleep 0.25
  done
  log "kafka not ready within ${START_TIMEOUT}s; log tail:"
  tail -n 60 "$KDIR/kafka.log" >&2 || true
  return 1
}

kafka_start() {
  [[ -s "$KDIR/server.properties" ]] || die "no kafka state in $KDIR: run 'scripts/services.sh up' first"
  if kafka_alive; then return 0; fi
  ensure_kafka_jars
  kafka_launch
  kafka_wait || { stop_proc kafka "$KDIR/kafka.pid" kafka.Kafka; return 1; }
  log "kafka up on 127.0.0.1:$(kafka_port) (pid $(cat "$KDIR/kafka.pid"))"
}

kafka_stop() { stop_proc kafka "$KDIR/kafka.pid" kafka.Kafka; }

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
  echo "usage: $0 up|down|status|kafka-stop|kafka-start|redis-stop|redis-start" >&2
  exit 2
}

[[ $# -eq 1 ]] || usage
case "$1" in
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
