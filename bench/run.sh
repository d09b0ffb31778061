#!/usr/bin/env bash
# bench/run.sh — TAP against the upstream called directly and against nginx,
# side by side in one run (SPEC §13, docs/benchmarks.md).
#
# What it does, start to end (every step is bounded; nothing is left running):
#   1. installs wrk and nginx with apt-get when missing (nginx is skipped with
#      a message when it cannot be had); builds the release binaries;
#   2. starts, all on 127.0.0.1 and in a temporary directory:
#        upstream  tap-bench-upstream (hyper; /small = 217 B JSON, /big = 1 MiB)
#        nginx     reverse proxy injecting "Authorization: Bearer <secret>"
#        tap       `tap serve` with credential `bench` (same header injected,
#                  answers scrubbed, audit rows committed to SQLite)
#        tap-10k   with --scale: a second TAP whose store also holds 10,000
#                  agents and 10,000 credentials
#        tap-pg    with --postgres: a TAP like `tap` whose store is a fresh
#                  schema of the PostgreSQL database $DATABASE_URL names
#                  (default postgres://postgres@127.0.0.1:5432/test), dropped
#                  at the end; the CPU of its PostgreSQL backends is measured
#                  too (db cpu/r)
#   3. checks every subject answers like the upstream and that the credential
#      is injected (and, through TAP, scrubbed from the answer);
#   4. streams 1 GiB through TAP and reports its memory before and after;
#   5. runs the wrk matrix (small body at each --conc, 1 MiB body at
#      --big-conc), every case --repeats times, subjects interleaved in a
#      rotating order, measuring throughput, latency, CPU per request and
#      errors; then prints medians, ratios TAP/direct and TAP/nginx, TAP's
#      peak RSS (VmHWM) and the SPEC §13 targets met or missed.
#
# Usage: bench/run.sh [options]
#   --quick            smoke run: 1 repeat of 2 s, 1 s warm-up, 256 MiB stream
#   --scale            add the tap-10k subject (10,000 agents + 10,000 credentials)
#   --postgres         add the tap-pg subject (the store on PostgreSQL, see above)
#   --repeats N        repeats of every case; medians reported [3]
#   --duration S       seconds of every measured wrk run [5]
#   --warmup S         unmeasured seconds per subject before the matrix [2]
#   --conc "LIST"      connections for the small body ["1 16 64"]
#   --big-conc N       connections for the 1 MiB body [16]
#   --threads N        wrk threads, capped at the connection count [2]
#   --stream-mib N     size of the streamed-response memory check [1024]; 0 skips it
#   --no-nginx         leave nginx out
#   --skip-build       use the binaries already in target/release
#   --out DIR          where results.csv, summary.txt and raw wrk output go
#                      [a new /tmp/tap-bench-results.XXXXXX]
#   --keep             keep the temporary directory (stores, logs, configs)
#   -h, --help         this text
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/target/release"

REPEATS=3 DURATION=5 WARMUP=2 CONC="1 16 64" BIG_CONC=16 THREADS=2
STREAM_MIB=1024 USE_NGINX=1 SCALE=0 BUILD=1 OUT="" KEEP=0 MODE="full" USE_PG=0
PG_BASE="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
SCALE_AGENTS=10000 SCALE_CREDENTIALS=10000
SECRET="sk_bench_0123456789abcdefghijklmnopqrstuv"
SETTLE=1
# Each TAP here picks its store itself: never one from the caller's environment.
unset TAP_DATABASE_URL

say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
posint() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 needs a whole number, got '$2'"; }

while [[ $# -gt 0 ]]; do
  opt="$1"
  case "$opt" in
    --quick) MODE="quick" REPEATS=1 DURATION=2 WARMUP=1 STREAM_MIB=256; shift ;;
    --scale) SCALE=1; shift ;;
    --postgres) USE_PG=1; shift ;;
    --no-nginx) USE_NGINX=0; shift ;;
    --skip-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --repeats|--duration|--warmup|--big-conc|--threads|--stream-mib|--conc|--out)
      [[ $# -ge 2 ]] || die "$opt needs a value"
      case "$opt" in
        --repeats) posint "$opt" "$2"; REPEATS="$2" ;;
        --duration) posint "$opt" "$2"; DURATION="$2" ;;
        --warmup) posint "$opt" "$2"; WARMUP="$2" ;;
        --big-conc) posint "$opt" "$2"; BIG_CONC="$2" ;;
        --threads) posint "$opt" "$2"; THREADS="$2" ;;
        --stream-mib) posint "$opt" "$2"; STREAM_MIB="$2" ;;
        --conc) for c in $2; do posint "$opt" "$c"; done; CONC="$2" ;;
        --out) OUT="$2" ;;
      esac
      shift 2 ;;
    *) die "unknown option $opt (see --help)" ;;
  esac
done
[[ $REPEATS -ge 1 && $DURATION -ge 1 ]] || die "--repeats and --duration must be at least 1"

# ------------------------------------------------------------------ tools

apt_install() { # $@ packages; true when they got installed
  [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null || return 1
  say "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

command -v curl >/dev/null || apt_install curl || die "curl is needed (Debian: apt-get install -y curl)"
command -v wrk >/dev/null || apt_install wrk || die "wrk is needed (Debian: apt-get install -y wrk)"
if [[ $USE_PG == 1 ]]; then
  [[ "$PG_BASE" == postgres://* || "$PG_BASE" == postgresql://* ]] \
    || die "--postgres needs DATABASE_URL to be a postgres:// URL"
  command -v psql >/dev/null || apt_install postgresql-client \
    || die "psql is needed for --postgres (Debian: apt-get install -y postgresql-client)"
  timeout 10 psql "$PG_BASE" -Atqc 'SELECT 1' >/dev/null 2>&1 \
    || die "--postgres: cannot reach the database DATABASE_URL names"
fi
NGINX_BIN=""
if [[ $USE_NGINX == 1 ]]; then
  NGINX_BIN="$(command -v nginx || true)"
  [[ -z "$NGINX_BIN" && -x /usr/sbin/nginx ]] && NGINX_BIN=/usr/sbin/nginx
  if [[ -z "$NGINX_BIN" ]] && apt_install nginx; then
    NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
    # The Debian package may have started a system nginx: that one is not ours to stop,
    # and it listens on port 80 only, which this run never uses.
  fi
  if [[ -z "$NGINX_BIN" || ! -x "$NGINX_BIN" ]]; then
    say "nginx is not installed and could not be installed: running WITHOUT the nginx baseline"
    say "(Debian: apt-get install -y nginx). TAP/nginx ratios and SPEC checks against nginx will show '-'."
    USE_NGINX=0 NGINX_BIN=""
  fi
fi

if [[ $BUILD == 1 ]]; then
  say "building release binaries (cargo build --release -p tap-cli -p tap-testkit --bins)"
  (cd "$REPO" && cargo build --release --quiet -p tap-cli -p tap-testkit --bins) \
    || die "release build failed"
fi
for b in tap tap-bench-upstream; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing (run without --skip-build)"
done
[[ $SCALE == 0 || -x "$BIN/tap-bench-seed" ]] || die "$BIN/tap-bench-seed is missing"

# ------------------------------------------------------------------ processes

WORK="$(mktemp -d /tmp/tap-bench.XXXXXX)"
OUT="${OUT:-$(mktemp -d /tmp/tap-bench-results.XXXXXX)}"
mkdir -p "$OUT/raw" "$WORK/lua"
STARTED_PIDS=()
PG_SCHEMA="" PG_URL="" PG_APP=""

stop_pid() { # $1 pid: TERM, wait up to 20 s, then KILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${STARTED_PIDS[$i]}
    stop_pid "$pid"
  done
  if [[ -n "$PG_SCHEMA" ]]; then
    timeout 30 psql "$PG_BASE" -Atqc "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 \
      || say "could not drop the PostgreSQL schema $PG_SCHEMA"
  fi
  if [[ $KEEP == 1 ]]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # $1 description, $2 tries of 0.1 s, rest: command that succeeds when ready
  local what=$1 tries=$2 i
  shift 2
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what did not come up in $((tries / 10)) s"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # a free loopback port in 20000-59999
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_free "$p" && { echo "$p"; return 0; }
  done
  die "no free port found"
}

# upstream
"$BIN/tap-bench-upstream" --listen 127.0.0.1:0 --addr-file "$WORK/upstream.addr" \
  >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
STARTED_PIDS+=("$UP_PID")
wait_for "the upstream" 100 test -s "$WORK/upstream.addr"
UPSTREAM="http://$(head -n1 "$WORK/upstream.addr")"
say "upstream $UPSTREAM (pid $UP_PID)"

# nginx
NGINX_URL="" NGINX_PID=""
start_nginx() {
  local port dir="$WORK/nginx" user_line=""
  port=$(pick_port)
  mkdir -p "$dir/tmp"
  # As root the workers would drop to `nobody`, who cannot enter the 0700 temp dir.
  [[ $EUID -eq 0 ]] && user_line="user root;"
  cat >"$dir/nginx.conf" <<EOF
# Baseline: a plain reverse proxy adding the same Authorization header TAP injects.
$user_line
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 10000000;
  upstream bench_upstream {
    server ${UPSTREAM#http://};
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $SECRET";
      # Stream like TAP does instead of spooling large answers to disk.
      proxy_max_temp_file_size 0;
    }
  }
}
EOF
  "$NGINX_BIN" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  NGINX_PID=$!
  STARTED_PIDS+=("$NGINX_PID")
  NGINX_URL="http://127.0.0.1:$port"
  wait_for "nginx" 100 curl -sf -o /dev/null "$NGINX_URL/small"
  say "nginx $NGINX_URL (master pid $NGINX_PID)"
}
[[ $USE_NGINX == 1 ]] && start_nginx

# TAP: one data dir per instance; prints "URL PID KEY" into $WORK/<name>.info
tap_cmd() { # $1 data dir, $2 database URL ('' for SQLite in the data dir), rest: tap arguments
  local dir=$1 db=$2
  shift 2
  if [[ -n "$db" ]]; then
    TAP_DATA_DIR="$dir" TAP_DATABASE_URL="$db" "$BIN/tap" "$@"
  else
    TAP_DATA_DIR="$dir" "$BIN/tap" "$@"
  fi
}

start_tap() { # $1 name, $2 1 to seed the scale store, $3 database URL ('' for SQLite)
  local name=$1 seed=$2 db=$3 dir="$WORK/$1" key url pid i
  tap_cmd "$dir" "$db" init --json >"$WORK/$name.init.json" 2>"$WORK/$name.init.log" \
    || die "tap init failed: $(cat "$WORK/$name.init.log")"
  printf '%s' "$SECRET" | tap_cmd "$dir" "$db" add bench --allowed-host "$UPSTREAM" --value-stdin \
    >/dev/null 2>"$WORK/$name.add.log" || die "tap add failed: $(cat "$WORK/$name.add.log")"
  key=$(tap_cmd "$dir" "$db" agent create bot --credential bench --json 2>"$WORK/$name.agent.log" \
    | tr -d '\n' | sed -n 's/.*"api_key" *: *"\([^"]*\)".*/\1/p')
  [[ -n "$key" ]] || die "tap agent create printed no api_key: $(cat "$WORK/$name.agent.log")"
  if [[ $seed == 1 ]]; then
    say "$name: seeding $SCALE_AGENTS agents and $SCALE_CREDENTIALS credentials"
    "$BIN/tap-bench-seed" --data-dir "$dir" --allowed-host "$UPSTREAM" \
      --agents "$SCALE_AGENTS" --credentials "$SCALE_CREDENTIALS" >&2 \
      || die "seeding the scale store failed"
  fi
  # The upstream is on loopback, which TAP refuses unless it is allowlisted.
  # `env` execs tap, so $! is tap's own pid (a backgrounded function would be a subshell).
  local envs=(TAP_DATA_DIR="$dir" TAP_PRIVATE_ALLOWLIST=127.0.0.1)
  [[ -n "$db" ]] && envs+=(TAP_DATABASE_URL="$db")
  env "${envs[@]}" "$BIN/tap" serve --listen 127.0.0.1:0 >"$WORK/$name.log" 2>&1 &
  pid=$!
  STARTED_PIDS+=("$pid")
  url=""
  for ((i = 0; i < 1200; i++)); do # up to 120 s: a 10k store decrypts and compiles everything at start
    url=$(sed -n 's/^TAP proxy listening on \(http:[^ ]*\).*/\1/p' "$WORK/$name.log" | head -n1)
    [[ -n "$url" ]] && break
    kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -n 5 "$WORK/$name.log")"
    sleep 0.1
  done
  [[ -n "$url" ]] || die "$name did not start listening in 120 s"
  echo "$url $pid $key" >"$WORK/$name.info"
  say "$name $url (pid $pid)"
}

start_tap tap 0 ""
[[ $SCALE == 1 ]] && start_tap tap-10k 1 ""
if [[ $USE_PG == 1 ]]; then
  # A schema of its own (dropped by cleanup); the application name finds its backends.
  PG_SCHEMA="tap_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  PG_APP="tap-bench-$PG_SCHEMA"
  timeout 30 psql "$PG_BASE" -Atqc "CREATE SCHEMA $PG_SCHEMA" >/dev/null \
    || { PG_SCHEMA=""; die "could not create a schema in the database DATABASE_URL names"; }
  sep='?'
  [[ "$PG_BASE" == *\?* ]] && sep='&'
  PG_URL="$PG_BASE${sep}options[search_path]=$PG_SCHEMA&application_name=$PG_APP"
  say "tap-pg: PostgreSQL schema $PG_SCHEMA"
  start_tap tap-pg 0 "$PG_URL"
fi

# ------------------------------------------------------------------ subjects

# Parallel arrays: name, pid(s) to measure, and a function that writes the Lua script.
NAMES=(direct) SUBJ_PIDS=("$UP_PID") SUBJ_URL=("$UPSTREAM") SUBJ_KEY=("")
if [[ $USE_NGINX == 1 ]]; then
  NAMES+=(nginx) SUBJ_PIDS+=("$NGINX_PID") SUBJ_URL+=("$NGINX_URL") SUBJ_KEY+=("")
fi
for t in tap tap-10k tap-pg; do
  [[ -f "$WORK/$t.info" ]] || continue
  read -r url pid key <"$WORK/$t.info"
  NAMES+=("$t") SUBJ_PIDS+=("$pid") SUBJ_URL+=("$url") SUBJ_KEY+=("$key")
done

is_tap() { [[ -n "${SUBJ_KEY[$1]}" ]]; }

curl_subject() { # $1 index, $2 upstream path, rest: extra curl args
  local i=$1 path=$2
  shift 2
  if is_tap "$i"; then
    curl -sS --max-time 120 -X POST "$@" \
      -H "X-TAP-Key: ${SUBJ_KEY[$i]}" -H 'X-TAP-Credential: bench' \
      -H "X-TAP-Target: $UPSTREAM$path" -H 'X-TAP-Method: GET' "${SUBJ_URL[$i]}/forward"
  else
    curl -sS --max-time 120 "$@" "${SUBJ_URL[$i]}$path"
  fi
}

lua_for() { # $1 index, $2 path -> path of a wrk script (method, headers, RESULT line)
  local i=$1 path=$2 f
  f="$WORK/lua/${NAMES[$i]}${path//\//_}.lua"
  if [[ ! -f "$f" ]]; then
    {
      if is_tap "$i"; then
        echo 'wrk.method = "POST"'
        echo "wrk.headers[\"X-TAP-Key\"] = \"${SUBJ_KEY[$i]}\""
        echo 'wrk.headers["X-TAP-Credential"] = "bench"'
        echo "wrk.headers[\"X-TAP-Target\"] = \"$UPSTREAM$path\""
        echo 'wrk.headers["X-TAP-Method"] = "GET"'
      fi
      cat <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %.0f %.0f %d %d\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), summary.duration, summary.bytes))
end
EOF
    } >"$f"
  fi
  echo "$f"
}

target_url() { # $1 index, $2 path
  if is_tap "$1"; then echo "${SUBJ_URL[$1]}/forward"; else echo "${SUBJ_URL[$1]}$2"; fi
}

# ------------------------------------------------------------------ /proc readings

proc_pids() { # $1 pid -> it and its children (nginx master -> workers)
  local p=$1
  [[ -d /proc/$p ]] || return 0
  echo "$p"
  cat "/proc/$p/task/$p/children" 2>/dev/null | tr ' ' '\n' | sed '/^$/d'
}

cpu_ticks() { # $1 pid -> utime+stime of it and its children, in clock ticks
  local total=0 p s
  for p in $(proc_pids "$1"); do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }
    # after "pid (comm) ": field 1 is state; utime and stime are fields 12 and 13
    read -r -a f <<<"$s"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

hwm_kib() { # $1 pid -> VmHWM of it and its children, KiB
  local total=0 p v
  for p in $(proc_pids "$1"); do
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

ctx_switches() { # $1 pid -> context switches of every thread of it and its children
  local p
  for p in $(proc_pids "$1"); do
    cat /proc/"$p"/task/*/status 2>/dev/null || true
  done | awk '/ctxt_switches:/ { s += $2 } END { print s + 0 }'
}

TICK_US=$((1000000 / $(getconf CLK_TCK)))

pg_backends() { # the PostgreSQL backends serving tap-pg (found by their application name)
  [[ -n "$PG_APP" ]] || return 0
  timeout 10 psql "$PG_BASE" -Atqc \
    "SELECT pid FROM pg_stat_activity WHERE application_name = '$PG_APP'" 2>/dev/null || true
}

list_ticks() { # pids... -> utime+stime of each (no children), "pid ticks" lines
  local p s
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }
    read -r -a f <<<"$s"
    echo "$p $((f[11] + f[12]))"
  done
}

db_ticks_between() { # $1 "pid ticks" lines before, $2 after -> ticks the backends used
  # A backend that started during the run counts from zero; one that ended is lost.
  awk 'NR == FNR { b[$1] = $2; next } { d += $2 - (($1 in b) ? b[$1] : 0) } END { print d + 0 }' \
    <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# ------------------------------------------------------------------ preflight

say "preflight: every subject answers like the upstream; the credential is injected"
for i in "${!NAMES[@]}"; do
  for path in /small /big; do
    got=$(curl_subject "$i" "$path" -o /dev/null -w '%{http_code} %{size_download}') \
      || die "${NAMES[$i]} $path: request failed"
    want=$(curl_subject 0 "$path" -o /dev/null -w '%{http_code} %{size_download}')
    [[ "$got" == "$want" ]] || die "${NAMES[$i]} $path answered '$got', direct answered '$want'"
  done
  auth=$(curl_subject "$i" /auth)
  case "${NAMES[$i]}" in
    direct) [[ "$auth" == '{"authorization":""}' ]] || die "direct /auth: $auth" ;;
    nginx) [[ "$auth" == "{\"authorization\":\"Bearer $SECRET\"}" ]] \
      || die "nginx did not inject the header: $auth" ;;
    *) [[ "$auth" == '{"authorization":"Bearer [REDACTED:bench]"}' ]] \
      || die "${NAMES[$i]} did not inject and scrub the credential: $auth" ;;
  esac
done

# ------------------------------------------------------------------ streamed response memory

STREAM_LINE=""
if [[ $STREAM_MIB -gt 0 ]]; then
  for i in "${!NAMES[@]}"; do
    [[ "${NAMES[$i]}" == tap ]] || continue
    pid=${SUBJ_PIDS[$i]}
    before=$(hwm_kib "$pid")
    say "streaming $STREAM_MIB MiB through tap (memory check)"
    got=$(curl_subject "$i" "/stream?mib=$STREAM_MIB" -o /dev/null -w '%{http_code} %{size_download} %{time_total}') \
      || die "streaming through tap failed"
    after=$(hwm_kib "$pid")
    read -r code size secs <<<"$got"
    [[ "$code" == 200 && "$size" == $((STREAM_MIB * 1048576)) ]] \
      || die "streamed response: status $code, $size bytes"
    STREAM_RATE=$(awk -v b="$size" -v s="$secs" 'BEGIN { printf "%.0f", b / 1048576 / s }')
    STREAM_LINE=$(printf '%s MiB streamed through tap at %s MiB/s: VmHWM %.1f MiB before, %.1f MiB after (+%.1f MiB)' \
      "$STREAM_MIB" "$STREAM_RATE" "$(awk -v k="$before" 'BEGIN{print k/1024}')" \
      "$(awk -v k="$after" 'BEGIN{print k/1024}')" "$(awk -v a="$after" -v b="$before" 'BEGIN{print (a-b)/1024}')")
    echo "stream,$STREAM_MIB,$before,$after,$STREAM_RATE" >"$OUT/stream.csv"
    say "$STREAM_LINE"
  done
fi

# ------------------------------------------------------------------ matrix

CASES=()
for c in $CONC; do CASES+=("s$c:$c:/small"); done
CASES+=("big:$BIG_CONC:/big")
CSV="$OUT/results.csv"
echo "rep,case,subject,conc,requests,errors,non2xx,rps,p50_us,p99_us,mib_per_s,cpu_us_per_req,ctx_per_req,db_cpu_us_per_req" >"$CSV"

wrk_run() { # $1 index, $2 conc, $3 seconds, $4 path, $5 raw output file
  local i=$1 c=$2 secs=$3 path=$4 raw=$5 t=$THREADS
  ((t > c)) && t=$c
  timeout $((secs + 30)) wrk -t"$t" -c"$c" -d"${secs}s" --timeout 10s \
    -s "$(lua_for "$i" "$path")" "$(target_url "$i" "$path")" >"$raw" 2>&1 || true
}

n=${#NAMES[@]}
runs=$((REPEATS * ${#CASES[@]} * n))
say "matrix: ${NAMES[*]} x {${CASES[*]}} x $REPEATS repeats of ${DURATION}s = $runs runs, about $(((runs * (DURATION + SETTLE) + n * WARMUP) / 60 + 1)) min"
for i in "${!NAMES[@]}"; do
  wrk_run "$i" 16 "$WARMUP" /small "$OUT/raw/warmup.${NAMES[$i]}.txt"
done

run_no=0
for ((rep = 1; rep <= REPEATS; rep++)); do
  for ((ci = 0; ci < ${#CASES[@]}; ci++)); do
    IFS=: read -r case conc path <<<"${CASES[$ci]}"
    for ((k = 0; k < n; k++)); do
      i=$(((k + rep + ci) % n)) # rotate: no subject always goes first or last
      name=${NAMES[$i]}
      raw="$OUT/raw/$rep.$case.$name.txt"
      run_no=$((run_no + 1))
      d0="" db=""
      # shellcheck disable=SC2046 # one pid a word
      [[ $name == tap-pg ]] && d0=$(list_ticks $(pg_backends))
      t0=$(cpu_ticks "${SUBJ_PIDS[$i]}") x0=$(ctx_switches "${SUBJ_PIDS[$i]}")
      wrk_run "$i" "$conc" "$DURATION" "$path" "$raw"
      t1=$(cpu_ticks "${SUBJ_PIDS[$i]}") x1=$(ctx_switches "${SUBJ_PIDS[$i]}")
      # shellcheck disable=SC2046
      [[ $name == tap-pg ]] && db=$(db_ticks_between "$d0" "$(list_ticks $(pg_backends))")
      line=$(grep '^RESULT ' "$raw" | tail -n1 || true)
      if [[ -z "$line" ]]; then
        say "run $run_no/$runs $case $name: wrk gave no result (see $raw)"
        echo "$rep,$case,$name,$conc,0,1,0,,,,,,," >>"$CSV"
        continue
      fi
      read -r _ reqs errs non2xx p50 p99 dur_us bytes <<<"$line"
      awk -v rep="$rep" -v cs="$case" -v name="$name" -v conc="$conc" -v reqs="$reqs" \
        -v errs="$errs" -v non2xx="$non2xx" -v p50="$p50" -v p99="$p99" -v dur="$dur_us" \
        -v bytes="$bytes" -v ticks=$((t1 - t0)) -v tick_us="$TICK_US" -v ctx=$((x1 - x0)) -v db="$db" 'BEGIN {
          s = dur / 1e6
          printf "%s,%s,%s,%s,%d,%d,%d,%.1f,%d,%d,%.1f,%s,%s,%s\n", rep, cs, name, conc, reqs, errs,
            non2xx, reqs / s, p50, p99, bytes / s / 1048576,
            (reqs > 0) ? sprintf("%.1f", ticks * tick_us / reqs) : "",
            (reqs > 0) ? sprintf("%.2f", ctx / reqs) : "",
            (reqs > 0 && db != "") ? sprintf("%.1f", db * tick_us / reqs) : ""
        }' >>"$CSV"
      say "run $run_no/$runs $case $name: $(tail -n1 "$CSV" | cut -d, -f8) req/s, p50 ${p50} us, errors $((errs + non2xx))"
      sleep "$SETTLE"
    done
  done
done

# ------------------------------------------------------------------ report

HWM=""
for i in "${!NAMES[@]}"; do
  HWM+="${NAMES[$i]}=$(hwm_kib "${SUBJ_PIDS[$i]}") "
done
TAP_LOG_ERRORS=$(cat "$WORK"/tap*.log 2>/dev/null | grep -c -E 'WARN|ERROR' || true)

{
  echo "TAP benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $MODE run: $REPEATS x ${DURATION}s per case, wrk -t$THREADS"
  echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "subjects: ${NAMES[*]}; upstream $UPSTREAM"
  [[ -n "$STREAM_LINE" ]] && echo "$STREAM_LINE"
  [[ -n "$TAP_LOG_ERRORS" && "$TAP_LOG_ERRORS" != 0 ]] && echo "the TAP servers logged $TAP_LOG_ERRORS WARN/ERROR lines (rerun with --keep to read them)"
  awk -F, -v order="${NAMES[*]}" -v conc="$CONC" -v hwm="$HWM" '
function median(k,   n, i, j, a, t) {
  n = cnt[k]; if (n == 0) return ""
  for (i = 1; i <= n; i++) a[i] = v[k, i]
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function put(k, x) { if (x == "") return; cnt[k]++; v[k, cnt[k]] = x + 0
  if (!(k in lo) || x + 0 < lo[k]) lo[k] = x + 0; if (!(k in hi) || x + 0 > hi[k]) hi[k] = x + 0 }
function m(s, c, f) { return median(s SUBSEP c SUBSEP f) }
function fmt(x, d) { return (x == "") ? "-" : sprintf("%." d "f", x) }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : a / b }
function check(label, got, want, ok) {
  printf "  %-52s %-26s %-18s %s\n", label, got, want, (ok == "") ? "n/a" : (ok ? "met" : "MISSED")
}
NR > 1 {
  put($3 SUBSEP $2 SUBSEP "rps", $8); put($3 SUBSEP $2 SUBSEP "p50", $9); put($3 SUBSEP $2 SUBSEP "p99", $10)
  put($3 SUBSEP $2 SUBSEP "mib", $11); put($3 SUBSEP $2 SUBSEP "cpu", $12)
  put($3 SUBSEP $2 SUBSEP "ctx", $13); put($3 SUBSEP $2 SUBSEP "db", $14); err[$3] += $6 + $7
}
END {
  ns = split(order, S, " "); nc = split(conc, C, " ")
  split(hwm, H, " "); for (i in H) { split(H[i], kv, "="); mem[kv[1]] = kv[2] / 1024 }
  print ""
  print "Medians (req/s; latency in us; cpu/r = utime+stime of the subject process(es) per request, us;"
  print "         cs/r = their context switches per request)"
  line = sprintf("%-9s", "subject")
  for (j = 1; j <= nc; j++) line = line sprintf(" %9s", "rps c" C[j])
  line = line sprintf(" %8s %9s %7s %7s %7s %7s %9s %9s %6s %6s %8s %6s", "rps big", "MiB/s big", "p50 c1", "p99 c1",
    "p50 c16", "p99 c16", "cpu/r c16", "cpu/r big", "cs/r c1", "cs/r c16", "HWM MiB", "errors")
  print line
  for (i = 1; i <= ns; i++) { s = S[i]; line = sprintf("%-9s", s)
    for (j = 1; j <= nc; j++) line = line sprintf(" %9s", fmt(m(s, "s" C[j], "rps"), 0))
    line = line sprintf(" %8s %9s %7s %7s %7s %7s %9s %9s %6s %6s %8s %6d", fmt(m(s, "big", "rps"), 0), fmt(m(s, "big", "mib"), 0),
      fmt(m(s, "s1", "p50"), 0), fmt(m(s, "s1", "p99"), 0), fmt(m(s, "s16", "p50"), 0), fmt(m(s, "s16", "p99"), 0),
      fmt(m(s, "s16", "cpu"), 1), fmt(m(s, "big", "cpu"), 0), fmt(m(s, "s1", "ctx"), 1), fmt(m(s, "s16", "ctx"), 1),
      fmt(mem[s], 1), err[s])
    print line }

  if (("tap-pg" SUBSEP "s16" SUBSEP "db") in cnt) {
    print ""
    print "tap-pg: CPU of its PostgreSQL backends per request (us), and tap-pg + backends against tap (SQLite)"
    line = "  backends"
    for (j = 1; j <= nc; j++) line = line sprintf("  c%s %s", C[j], fmt(m("tap-pg", "s" C[j], "db"), 1))
    print line sprintf("  big %s", fmt(m("tap-pg", "big", "db"), 1))
    tp = m("tap-pg", "s16", "cpu") + m("tap-pg", "s16", "db")
    printf "  c16: tap-pg %.1f + backends %.1f = %.1f us per request; tap (SQLite, in-process) %.1f us (%.2fx)\n",
      m("tap-pg", "s16", "cpu"), m("tap-pg", "s16", "db"), tp, m("tap", "s16", "cpu"),
      (m("tap", "s16", "cpu") > 0) ? tp / m("tap", "s16", "cpu") : 0
  }

  for (pass = 1; pass <= 3; pass++) {
    base = (pass == 1) ? "direct" : (pass == 2) ? "nginx" : "tap"
    if (!((base SUBSEP "s" C[1] SUBSEP "rps") in cnt)) continue
    # against tap (SQLite): only the other TAPs, and only when there are any
    if (pass == 3 && !((("tap-pg" SUBSEP "s" C[1] SUBSEP "rps") in cnt) || (("tap-10k" SUBSEP "s" C[1] SUBSEP "rps") in cnt))) continue
    print ""
    printf "Ratios against %s (throughput: subject / %s; +p50: added median latency in us; cpu: subject / %s)\n", base, base, base
    line = sprintf("%-9s", "subject")
    for (j = 1; j <= nc; j++) line = line sprintf(" %8s", "rps c" C[j])
    line = line sprintf(" %8s %8s %8s %9s %9s", "rps big", "+p50 c1", "+p50 c16", "cpu c16", "cpu big")
    print line
    for (i = 1; i <= ns; i++) { s = S[i]; if (s == base || s == "direct" || (pass == 3 && s == "nginx")) continue
      line = sprintf("%-9s", s)
      for (j = 1; j <= nc; j++) line = line sprintf(" %8s", fmt(ratio(m(s, "s" C[j], "rps"), m(base, "s" C[j], "rps")), 2))
      d1 = (m(s, "s1", "p50") == "") ? "" : m(s, "s1", "p50") - m(base, "s1", "p50")
      d16 = (m(s, "s16", "p50") == "") ? "" : m(s, "s16", "p50") - m(base, "s16", "p50")
      line = line sprintf(" %8s %8s %8s %9s %9s", fmt(ratio(m(s, "big", "rps"), m(base, "big", "rps")), 2),
        (d1 == "") ? "-" : sprintf("%+d", d1), (d16 == "") ? "-" : sprintf("%+d", d16),
        fmt(ratio(m(s, "s16", "cpu"), m(base, "s16", "cpu")), 2), fmt(ratio(m(s, "big", "cpu"), m(base, "big", "cpu")), 2))
      print line }
  }

  print ""
  print "SPEC section 13 targets (tap against nginx, same run)"
  printf "  %-52s %-26s %-18s %s\n", "figure", "measured", "target", "verdict"
  hasn = (("nginx" SUBSEP "s1" SUBSEP "p50") in cnt)
  t1 = m("tap", "s1", "p50") - m("direct", "s1", "p50")
  if (hasn) { n1 = m("nginx", "s1", "p50") - m("direct", "s1", "p50")
    check("added median latency at c1 (tap - direct)", sprintf("%+d us (%.2fx nginx)", t1, (n1 > 0) ? t1 / n1 : 0),
      sprintf("<= %.0f us (1.5x)", 1.5 * n1), t1 <= 1.5 * n1)
    rc = ratio(m("tap", "s16", "cpu"), m("nginx", "s16", "cpu"))
    check("CPU per small request at c16", sprintf("%.1f us (%.2fx nginx)", m("tap", "s16", "cpu"), rc),
      sprintf("<= %.1f us (1.5x)", 1.5 * m("nginx", "s16", "cpu")), rc != "" && rc <= 1.5)
    for (j = 1; j <= nc; j++) if (C[j] >= 16) {
      r = ratio(m("tap", "s" C[j], "rps"), m("nginx", "s" C[j], "rps"))
      check(sprintf("small-body throughput at c%s", C[j]), sprintf("%.2fx nginx", r), ">= 0.70x", r != "" && r >= 0.7) }
    r = ratio(m("tap", "big", "rps"), m("nginx", "big", "rps"))
    check("1 MiB throughput, streamed and scrubbed", sprintf("%.2fx nginx", r), ">= 0.60x", r != "" && r >= 0.6)
  } else {
    check("added median latency at c1 (tap - direct)", sprintf("%+d us", t1), "1.5x nginx", "")
  }
  check("peak RSS of tap through the whole matrix (VmHWM)", sprintf("%.1f MiB", mem["tap"]), "<= 32 MiB", mem["tap"] <= 32)
  if (("tap-10k" SUBSEP "s1" SUBSEP "rps") in cnt) {
    check("tap-10k peak RSS (10,000 agents + credentials)", sprintf("%.1f MiB", mem["tap-10k"]), "<= 32 MiB", mem["tap-10k"] <= 32)
    worst = 1; wc = ""
    for (j = 1; j <= nc; j++) { r = ratio(m("tap-10k", "s" C[j], "rps"), m("tap", "s" C[j], "rps")); if (r != "" && r < worst) { worst = r; wc = "c" C[j] } }
    r = ratio(m("tap-10k", "big", "rps"), m("tap", "big", "rps")); if (r != "" && r < worst) { worst = r; wc = "big" }
    d = m("tap-10k", "s1", "p50") - m("tap", "s1", "p50")
    check("tap-10k vs tap: lowest throughput ratio", sprintf("%.2f (%s)", worst, (wc == "") ? "-" : wc), ">= 0.90 (noise)", worst >= 0.9)
    check("tap-10k vs tap: p50 at c1", sprintf("%+d us", d), "<= +10 us (noise)", d <= 10)
  }
  e = 0; for (s in err) e += err[s]
  check("errors (socket errors + non-2xx, all subjects)", sprintf("%d", e), "0", e == 0)

  print ""
  print "Spread of throughput across repeats (max/min - 1): differences smaller than this are noise"
  for (i = 1; i <= ns; i++) { s = S[i]; line = sprintf("  %-9s", s)
    for (j = 1; j <= nc + 1; j++) { c = (j <= nc) ? "s" C[j] : "big"; k = s SUBSEP c SUBSEP "rps"
      line = line sprintf(" %s %s", c, (k in lo && lo[k] > 0) ? sprintf("%.0f%%", (hi[k] / lo[k] - 1) * 100) : "-") }
    print line }
}' "$CSV"
  echo
  echo "raw wrk output, results.csv and this summary: $OUT"
} | tee "$OUT/summary.txt"
