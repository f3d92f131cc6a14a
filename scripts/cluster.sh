#!/usr/bin/env bash
# A whole Trunkline cluster on the loopback of this machine (README "Cluster"):
#   PostgreSQL  127.0.0.1:$CLUSTER_PG_PORT      Debian's server, a data directory of its own, run as `postgres`
#   Kamailio    127.0.0.1:$CLUSTER_FRONT_PORT   deploy/kamailio/kamailio.cfg, the three nodes in its dispatcher list
#   node 1..3   127.0.0.2/.3/.4                 SIP on $CLUSTER_NODE_SIP_PORT, HTTP on $CLUSTER_HTTP_PORT_BASE+N
#
#   scripts/cluster.sh up     starts everything, waits until each part is ready, prints KEY=VALUE lines
#   scripts/cluster.sh down   stops everything `up` started and removes its temporary directory
#
# Environment (defaults in brackets):
#   TRUNKLINE_BIN [dist/trunkline]   CLUSTER_STATE [.cluster.state in the repository]
#   CLUSTER_PG_PORT [55432]          CLUSTER_FRONT_PORT [5060]     CLUSTER_NODE_SIP_PORT [5060]
#   CLUSTER_HTTP_PORT_BASE [8080]    CLUSTER_ADMIN_TOKEN [random]  CLUSTER_READY_TIMEOUT [30 seconds]
#   CLUSTER_SECRET [random]          the nodes' cluster.secret (signs the routing decision a 302 carries)
set -Eeuo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
STATE=${CLUSTER_STATE:-$REPO/.cluster.state}
BIN=${TRUNKLINE_BIN:-$REPO/dist/trunkline}
PG_PORT=${CLUSTER_PG_PORT:-55432}
FRONT_PORT=${CLUSTER_FRONT_PORT:-5060}
NODE_SIP_PORT=${CLUSTER_NODE_SIP_PORT:-5060}
HTTP_PORT_BASE=${CLUSTER_HTTP_PORT_BASE:-8080}
READY_TIMEOUT=${CLUSTER_READY_TIMEOUT:-30}
FRONT_ADDR=127.0.0.1
NODE_ADDRS=(127.0.0.2 127.0.0.3 127.0.0.4)

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

pg_bin() {
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -1)
  [ -n "$newest" ] && [ -x "$newest/initdb" ] || die "PostgreSQL is not installed (scripts/system-deps.sh installs Debian's postgresql)"
  echo "$newest"
}

# Polls `$@` every 0.1 s until it succeeds; gives up after READY_TIMEOUT seconds naming `what`.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null; do
    [ $SECONDS -lt $deadline ] || { say "timed out waiting for $what"; return 1; }
    sleep 0.1
  done
}

# Runs `$@` (a readiness check) while process $2 ($1 names it) lives; gives up at once when it has died.
ready_or_dead() {
  local name=$1 pid=$2; shift 2
  alive "$pid" || die "$name (pid $pid) exited during start-up"
  "$@"
}

# A zombie (exited, not yet reaped by whoever inherited it) counts as gone.
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" | cut -c1)" != "Z" ]; }

# Something already listening on address:port (TCP or UDP)?
port_taken() { ss -Htuln "( sport = :$2 )" 2>/dev/null | awk '{print $5}' | grep -Eq "^(\*|0\.0\.0\.0|\[::\]|$1):$2$"; }

print_keys() {
  grep -E '^(FRONT_SIP|NODE[123]_API|ADMIN_TOKEN|DATABASE_URL)=' "$STATE"
}

record() { echo "$1=$2" >>"$STATE"; }

up() {
  if [ -f "$STATE" ]; then
    # shellcheck disable=SC1090
    local KAMAILIO_PID="" NODE1_PID="" NODE2_PID="" NODE3_PID="" PG_PID=""
    . "$STATE"
    if alive "$KAMAILIO_PID" && alive "$NODE1_PID" && alive "$NODE2_PID" && alive "$NODE3_PID" && alive "$PG_PID"; then
      say "already up (state: $STATE); \`$0 down\` stops it"
      print_keys
      return 0
    fi
    say "a previous cluster is partly gone; cleaning it up first"
    down
  fi

  [ "$(id -u)" -eq 0 ] || die "run as root: PostgreSQL runs as the postgres user (runuser)"
  [ -x "$BIN" ] || die "no Trunkline executable at $BIN (make build)"
  command -v kamailio >/dev/null && command -v kamcmd >/dev/null || die "kamailio is not installed (scripts/system-deps.sh)"
  local pgbin; pgbin=$(pg_bin)
  if port_taken "$FRONT_ADDR" "$PG_PORT"; then die "$FRONT_ADDR:$PG_PORT is taken (set CLUSTER_PG_PORT)"; fi
  if port_taken "$FRONT_ADDR" "$FRONT_PORT"; then die "$FRONT_ADDR:$FRONT_PORT is taken (set CLUSTER_FRONT_PORT)"; fi
  local i
  for i in 1 2 3; do
    if port_taken "${NODE_ADDRS[i-1]}" "$NODE_SIP_PORT"; then die "${NODE_ADDRS[i-1]}:$NODE_SIP_PORT is taken (set CLUSTER_NODE_SIP_PORT)"; fi
    if port_taken "${NODE_ADDRS[i-1]}" $((HTTP_PORT_BASE + i)); then die "${NODE_ADDRS[i-1]}:$((HTTP_PORT_BASE + i)) is taken (set CLUSTER_HTTP_PORT_BASE)"; fi
  done

  local dir token secret
  dir=$(mktemp -d "${TMPDIR:-/tmp}/trunkline-cluster.XXXXXX")
  # `postgres` only passes through to its own pg/; the rest (the admin token) stays root's.
  chmod 711 "$dir"
  token=${CLUSTER_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
  secret=${CLUSTER_SECRET:-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')}
  : >"$STATE"
  record DIR "$dir"
  # Whatever fails from here on, what was started is stopped again.
  trap 'say "start failed; the last lines of its logs:"; tail -n 20 "$dir"/*/*.log >&2 2>/dev/null || true; down' EXIT

  # PostgreSQL: initdb refuses root, so the data directory belongs to `postgres`.
  mkdir "$dir/pg"
  chown postgres:postgres "$dir/pg"
  chmod 700 "$dir/pg"
  record PG_DATA "$dir/pg/data"
  runuser -u postgres -- "$pgbin/initdb" -D "$dir/pg/data" -U postgres --auth=trust --encoding=UTF8 --no-sync >"$dir/pg/initdb.out" 2>&1 \
    || die "initdb failed: $(cat "$dir/pg/initdb.out")"
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/postgres.log" -w -t "$READY_TIMEOUT" \
    -o "-c listen_addresses=$FRONT_ADDR -c port=$PG_PORT -c unix_socket_directories=$dir/pg -c fsync=off" start >/dev/null
  record PG_PID "$(head -1 "$dir/pg/data/postmaster.pid")"
  wait_for "PostgreSQL" "$pgbin/pg_isready" -q -U postgres -h "$FRONT_ADDR" -p "$PG_PORT"
  runuser -u postgres -- "$pgbin/createdb" -h "$FRONT_ADDR" -p "$PG_PORT" -U postgres trunkline
  local database_url="postgres://postgres@$FRONT_ADDR:$PG_PORT/trunkline"

  # The nodes: one shared store, the front trusted for the caller's address and used as outbound
  # proxy and registration Contact (cluster.front), RTP ranges apart.
  for i in 1 2 3; do
    local addr=${NODE_ADDRS[i-1]} node="$dir/node$i"
    mkdir -m 700 "$node"
    cat >"$node/config.yaml" <<EOF
sip:
  listen:
    - { transport: udp, host: $addr, port: $NODE_SIP_PORT }
    - { transport: tcp, host: $addr, port: $NODE_SIP_PORT }
  trustedFronts: ["$FRONT_ADDR"]
rtp: { portMin: $((10000 + (i - 1) * 3000)), portMax: $((12998 + (i - 1) * 3000)) }
http: { host: $addr, port: $((HTTP_PORT_BASE + i)) }
adminToken: $token
database:
  url: $database_url
# A node silent for 3 s is dead: its channels re-home at the next call, well within 10 s.
cluster: { nodeId: node$i, heartbeatMs: 1000, deadAfterMs: 3000, secret: $secret, front: "sip:$FRONT_ADDR:$FRONT_PORT" }
logLevel: info
EOF
    setsid "$BIN" serve --config "$node/config.yaml" >"$node/trunkline.log" 2>&1 </dev/null &
    record "NODE${i}_PID" $!
  done
  for i in 1 2 3; do
    wait_for "node $i (${NODE_ADDRS[i-1]}) /readyz" ready_or_dead "node $i" "$(sed -n "s/^NODE${i}_PID=//p" "$STATE")" \
      curl -fs "http://${NODE_ADDRS[i-1]}:$((HTTP_PORT_BASE + i))/readyz"
  done

  # The front: nodes start inactive (flags 9 = inactive + probing), so "every node AP" below means
  # each answered a probe with 200.
  mkdir -m 700 "$dir/kamailio"
  for i in 1 2 3; do echo "1 sip:${NODE_ADDRS[i-1]}:$NODE_SIP_PORT 9"; done >"$dir/kamailio/dispatcher.list"
  setsid kamailio -DD -E -f "$REPO/deploy/kamailio/kamailio.cfg" \
    -A "DISPATCHER_LIST=\"$dir/kamailio/dispatcher.list\"" -A "CTL_SOCKET=\"unix:$dir/kamailio/ctl\"" -A PROBE_INTERVAL=1 \
    -l "udp:$FRONT_ADDR:$FRONT_PORT" -l "tcp:$FRONT_ADDR:$FRONT_PORT" -Y "$dir/kamailio" -w "$dir/kamailio" \
    >"$dir/kamailio/kamailio.log" 2>&1 </dev/null &
  record KAMAILIO_PID $!
  local kamailio_pid=$!
  record KAMAILIO_CTL "unix:$dir/kamailio/ctl"
  wait_for "Kamailio's dispatcher to see the three nodes up" \
    ready_or_dead Kamailio "$kamailio_pid" bash -c "[ \"\$(kamcmd -s unix:$dir/kamailio/ctl dispatcher.list 2>/dev/null | grep -c 'FLAGS: AP')\" -eq 3 ]"
  trap - EXIT

  record FRONT_SIP "sip:$FRONT_ADDR:$FRONT_PORT"
  for i in 1 2 3; do record "NODE${i}_API" "http://${NODE_ADDRS[i-1]}:$((HTTP_PORT_BASE + i))"; done
  record ADMIN_TOKEN "$token"
  record DATABASE_URL "$database_url"
  print_keys
  say "up; logs in $dir/*/; \`make cluster-down\` stops it"
}

# SIGTERM to a process group, then SIGKILL once 10 s have passed.
stop_group() {
  local pid=$1
  alive "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  while alive "$pid"; do sleep 0.1; done
}

down() {
  if [ ! -f "$STATE" ]; then
    say "not up (no $STATE)"
    return 0
  fi
  local DIR="" PG_DATA="" PG_PID="" KAMAILIO_PID="" NODE1_PID="" NODE2_PID="" NODE3_PID=""
  # shellcheck disable=SC1090
  . "$STATE"
  stop_group "$KAMAILIO_PID"
  local pid
  for pid in "$NODE1_PID" "$NODE2_PID" "$NODE3_PID"; do
    if alive "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
  done
  for pid in "$NODE1_PID" "$NODE2_PID" "$NODE3_PID"; do stop_group "$pid"; done
  if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if alive "$PG_PID"; then kill -KILL "$PG_PID" 2>/dev/null || true; fi
  while alive "$PG_PID"; do sleep 0.1; done
  case "$DIR" in
    */trunkline-cluster.*) rm -rf "$DIR" ;;
  esac
  rm -f "$STATE"
  say "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
