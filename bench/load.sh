#!/usr/bin/env bash
# SIPp load against switchboard on loopback: registers users with digest auth,
# then INVITE-180-200-ACK-BYE calls and REGISTER storms at rising rates,
# printing calls/s, failures and response-time percentiles.
#
# It starts a release build of the router on a temporary SQLite database,
# provisions users 1000-1999 (answering UAS) and 2000-2199 (never answering)
# with password "pw<user>" over the admin API, and drives it with
# ../shared/bench/peer-baseline.sh (the same script and scenarios that measure
# Kamailio, so the numbers compare side by side).
#
# Usage: bench/load.sh                    full run (rates from peer-baseline.sh)
#        SMOKE=1 bench/load.sh            short bounded run (CI)
#        VOICE=1 bench/load.sh            voice feature calls (*90, a spoken
#                                         confirmation) at VOICE_RATE/s (20)
#                                         beside calls at CALL_RATE/s (2000)
#                                         for 20 s: prompt RTP send jitter and
#                                         voice sessions held, from /metrics
#        KAMAILIO=1 bench/load.sh         also run the same load against Kamailio
#        DB=postgres bench/load.sh        the router on PostgreSQL (a throwaway
#                                         server started by .ci/postgres.sh)
#        DB=postgres NODES=3 bench/load.sh   three routers on that database;
#                                         SIPp drives the first, the others
#                                         follow every change (the cost of a
#                                         cluster on the node under load)
# Loopback only; everything started here is stopped on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PEER="${PEER_BASELINE:-$ROOT/../shared/bench/peer-baseline.sh}"
SIP_PORT="${SIP_PORT:-5070}"
HTTP_PORT="${HTTP_PORT:-8090}"
WORK="$(mktemp -d /tmp/switchboard-bench.XXXXXX)"
TOKEN="bench-token-$$"

if [ ! -f "$PEER" ]; then
  echo "peer-baseline.sh not found at $PEER (set PEER_BASELINE)" >&2
  exit 2
fi
command -v sipp >/dev/null || { echo "sipp not found (apt-get install -y sip-tester)" >&2; exit 2; }

# Smoke runs reuse the debug build the tests made; measurements need release.
if [ -n "${SMOKE:-}" ]; then
  cargo build --quiet -p switchboard --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/debug/switchboard"
else
  cargo build --release --quiet -p switchboard --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/switchboard"
fi

NODES="${NODES:-1}"
PG_DIR=""
case "${DB:-sqlite}" in
  sqlite) DATABASE_URL="sqlite://$WORK/bench.db" ;;
  postgres)
    eval "$(bash "$ROOT/.ci/postgres.sh")"
    PG_DIR="$SWITCHBOARD_TEST_POSTGRES_DIR"
    psql "$SWITCHBOARD_TEST_POSTGRES" -qc "CREATE DATABASE bench" >/dev/null
    DATABASE_URL="${SWITCHBOARD_TEST_POSTGRES%/*}/bench" ;;
  *) echo "DB must be sqlite or postgres" >&2; exit 2 ;;
esac
if [ "$NODES" -gt 1 ] && [ "${DB:-sqlite}" != postgres ]; then
  echo "NODES > 1 needs DB=postgres" >&2; exit 2
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
  if [ -n "$PG_DIR" ]; then bash "$ROOT/.ci/postgres.sh" stop "$PG_DIR" || true; PG_DIR=""; fi
}
trap cleanup EXIT
for n in $(seq 1 "$NODES"); do
  port=$((SIP_PORT + 2 * (n - 1))); http=$((HTTP_PORT + n - 1))
  cat > "$WORK/switchboard-$n.toml" <<TOML
database_url = "$DATABASE_URL"
admin_token = "$TOKEN"
seed_demo = false
[sip]
listen = "127.0.0.1:$port"
trusted = ["127.0.0.0/8"]
default_ring_secs = 5
[http]
listen = "127.0.0.1:$http"
[registrar]
max_expires = 7200
[cluster]
node_id = "bench-$n"
TOML
  RUST_LOG=switchboard=warn "$BIN" --config "$WORK/switchboard-$n.toml" > "$WORK/router-$n.log" 2>&1 &
  PIDS+=($!)
  # One at a time: the first creates the schema.
  [ "$n" = 1 ] && { for _ in $(seq 1 1200); do curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done; }
done
ROUTER_PID=${PIDS[0]}
# A cold start compiles the built-in plugins (slow in a debug build on a
# busy machine): wait up to 120 s, and stop early if the router died.
up=""
for _ in $(seq 1 1200); do
  if curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$ROUTER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "router did not come up; its log:" >&2
  cat "$WORK/router-1.log" >&2
  exit 1
fi

api() { # method path [json]
  curl -sf -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       ${3:+--data "$3"} "http://127.0.0.1:$HTTP_PORT/api/v1$2"
}
TENANT_ID=$(api POST /tenants '{"domain":"bench.test","name":"Bench"}' | sed -E 's/.*"id":([0-9]+).*/\1/')
if [ -n "${SMOKE:-}" ]; then USERS="$(seq 1000 1049)"; else USERS="$(seq 1000 1999) $(seq 2000 2199)"; fi
echo "# provisioning $(echo $USERS | wc -w) users in tenant $TENANT_ID"
for u in $USERS; do
  api POST "/tenants/$TENANT_ID/employees" "{\"name\":\"User $u\",\"extension\":\"$u\",\"password\":\"pw$u\"}" >/dev/null
done

if [ -n "${PLUGINS:-}" ]; then
  WASM="$ROOT/target/wasm-plugins/wasm32-wasip2/release/test_continue.wasm"
  chain=""
  for i in $(seq 1 "$PLUGINS"); do
    curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/wasm' --data-binary @"$WASM" \
         "http://127.0.0.1:$HTTP_PORT/api/v1/tenants/$TENANT_ID/plugins/continue-$i" >/dev/null
    api PUT "/tenants/$TENANT_ID/plugins/continue-$i/settings/tenant" '{"n":1}' >/dev/null
    chain="$chain${chain:+,}{\"name\":\"continue-$i\"}"
  done
  api PUT "/tenants/$TENANT_ID/plugin-chain" "{\"chain\":[$chain]}" >/dev/null
  echo "# $PLUGINS plugins enabled for the tenant"
fi

if [ -n "${SMOKE:-}" ]; then
  # peer-baseline.sh registers 1000..1999; in smoke mode only the first 50
  # exist, so run the scenarios directly at low rates.
  cd "$WORK"
  cp "$(dirname "$PEER")"/sipp/*.xml .
  seq 1000 1049 | { echo SEQUENTIAL; awk '{print $1";[authentication username="$1" password=pw"$1"];"}'; } > users.csv
  # Started here, stopped by its PID on exit (never by name).
  sipp -sf uas.xml -p 5090 -i 127.0.0.1 -nostdin -trace_stat > uas.out 2>&1 &
  PIDS+=($!)
  # Wait until it listens (5090 is 13E2 in /proc/net/udp).
  for _ in $(seq 1 50); do grep -qi ':13E2 ' /proc/net/udp && break; sleep 0.1; done
  sipp "127.0.0.1:$SIP_PORT" -sf reg_auth.xml -inf users.csv -key uas_host 127.0.0.1 -key uas_port 5090 \
       -r 50 -m 50 -recv_timeout 5000 -timeout 30s -nostdin -trace_stat > reg.out 2>&1 || { cat reg.out; exit 1; }
  rc=0
  sipp "127.0.0.1:$SIP_PORT" -sf uac.xml -inf users.csv -r 50 -m 200 -d 100 -recv_timeout 5000 \
       -timeout 60s -nostdin -trace_stat > uac.out 2>&1 || rc=$?
  ok=$(grep -E 'Successful call' uac.out | awk '{print $NF}' | tail -1)
  failed=$(grep -E 'Failed call' uac.out | awk '{print $NF}' | tail -1)
  echo "# smoke: 200 calls at 50/s: successful=${ok:-?} failed=${failed:-?} (sipp rc=$rc)"
  [ "$rc" = 0 ]
  exit
fi

if [ -n "${VOICE:-}" ]; then
  cd "$WORK"
  cp "$(dirname "$PEER")"/sipp/*.xml "$HERE"/sipp/voice_uac.xml .
  seq 1000 1999 | { echo SEQUENTIAL; awk '{print $1";[authentication username="$1" password=pw"$1"];"}'; } > users.csv
  sipp -sf uas.xml -p 5090 -i 127.0.0.1 -nostdin -trace_stat > uas.out 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 50); do grep -qi ':13E2 ' /proc/net/udp && break; sleep 0.1; done
  sipp "127.0.0.1:$SIP_PORT" -sf reg_auth.xml -inf users.csv -key uas_host 127.0.0.1 -key uas_port 5090 \
       -r 500 -m 1000 -recv_timeout 5000 -timeout 60s -nostdin -trace_stat > reg.out 2>&1 || { cat reg.out; exit 1; }
  rate="${CALL_RATE:-2000}"; vrate="${VOICE_RATE:-20}"
  sipp "127.0.0.1:$SIP_PORT" -sf uac.xml -inf users.csv -r "$rate" -m $((rate * 20)) -recv_timeout 5000 \
       -timeout 60s -nostdin -trace_stat > uac.out 2>&1 &
  UAC=$!; PIDS+=($UAC)
  sipp "127.0.0.1:$SIP_PORT" -sf voice_uac.xml -inf users.csv -p 5092 -mp 30000 -r "$vrate" -m $((vrate * 20)) \
       -recv_timeout 15000 -timeout 60s -nostdin -trace_stat > voice.out 2>&1 &
  VUAC=$!; PIDS+=($VUAC)
  peak=0
  while kill -0 "$VUAC" 2>/dev/null; do
    n=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^switchboard_media_sessions /{print $2}')
    [ "${n:-0}" -gt "$peak" ] && peak=$n
    sleep 0.5
  done
  wait "$UAC" || true
  echo "# calls at $rate/s: successful=$(grep -E 'Successful call' uac.out | awk '{print $NF}' | tail -1) failed=$(grep -E 'Failed call' uac.out | awk '{print $NF}' | tail -1)"
  echo "# voice calls at $vrate/s: successful=$(grep -E 'Successful call' voice.out | awk '{print $NF}' | tail -1) failed=$(grep -E 'Failed call' voice.out | awk '{print $NF}' | tail -1); voice sessions at once, peak: $peak"
  echo "# prompt RTP send jitter (deviation from the 20 ms clock), cumulative buckets:"
  curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep '^switchboard_rtp_send_jitter_seconds'
  exit
fi

AUTH=1 TARGET_PID=$ROUTER_PID bash "$PEER" 127.0.0.1 "$SIP_PORT"
if [ "$NODES" -gt 1 ]; then
  echo "# CPU of the other $((NODES - 1)) node(s) over the run (s): $(for p in "${PIDS[@]:1}"; do ps -o times= -p "$p"; done | tr '\n' ' ')"
fi
if [ -n "${KAMAILIO:-}" ]; then
  cleanup
  # kamailio.cfg listens on 127.0.0.1:5070 (our router is stopped by now).
  START_KAMAILIO=1 AUTH=1 bash "$PEER" 127.0.0.1 5070
fi
