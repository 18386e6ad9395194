#!/usr/bin/env bash
# tlsrelay and Postfix side by side as relays into the same sink (issue 8).
#
# Installs Postfix from Debian's packages if missing, builds tlsrelay and
# the bench tools (release), starts two sinks (plaintext, STARTTLS), two
# private Postfix instances and two tlsrelay instances relaying into them
# with equivalent settings (sync before 250, 20 connections per
# destination, no DNS, no reverse lookups), then runs every workload
# against each in alternating order, several repetitions, and prints the
# medians and the tlsrelay/Postfix ratios. Everything listens on
# 127.0.0.1 ports the OS picked; every run is bounded; only the processes
# started here are stopped, by pid, on exit. Run as root (a private
# Postfix instance needs it). BENCHMARKS.md explains the method.
#
# Scale with the environment:
#   REPS=3 MESSAGES=5000 SESSIONS=50 SIZE=2048 RCPTS=1
#   WORKLOADS="null W1 W2 W3" (also: xcheck, our generator against smtp-source)
#   PIPELINING=0 (1: the generator pipelines), RUN_TIMEOUT=300 (s, per run)
#   POSTFIX_TLS_REUSE=1 (0: Postfix's default, a new outbound TLS connection
#   per message)
#   OUT=target/compare (results.tsv and results.md), KEEP_WORK=1 keeps the
#   instances' folder and logs under /tmp
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-2048}
RCPTS=${RCPTS:-1}
WORKLOADS=${WORKLOADS:-"null W1 W2 W3"}
PIPELINING=${PIPELINING:-0}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
OUT=${OUT:-target/compare}
POSTFIX=/usr/sbin/postfix

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root: a private Postfix instance must be started by root"

# --- Postfix from Debian's packages -------------------------------------
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'install ok installed'; then
    say "installing postfix (debconf: No configuration)"
    export DEBIAN_FRONTEND=noninteractive
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    apt-get update -q
    apt-get install -y -q postfix
fi

# --- build ----------------------------------------------------------------
bench_exe() {
    cargo bench --no-run --bench "$1" 2>&1 \
        | sed -n "s|.*Executable benches/$1.rs (\(.*\))|\1|p" | tail -n1
}
if [[ ${NO_BUILD:-0} == 1 ]]; then
    # Developing this script: LOADGEN, SINK (and TLSRELAY) name built binaries.
    : "${LOADGEN:?NO_BUILD=1 needs LOADGEN}" "${SINK:?NO_BUILD=1 needs SINK}"
else
    say "cargo build --release; cargo bench --no-run (loadgen, sink)"
    cargo build --release -q
    LOADGEN=$(bench_exe loadgen)
    SINK=$(bench_exe sink)
fi
TLSRELAY=${TLSRELAY:-target/release/tlsrelay}
[[ -x $LOADGEN && -x $SINK && -x $TLSRELAY ]] || die "build did not produce loadgen, sink and tlsrelay"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/tlsrelay-compare.XXXXXX)
chmod 755 "$WORK"
say "work folder $WORK"

# --- cleanup: only what this script started, by pid ---------------------
PIDS=()
POSTFIX_DIRS=()
cleanup() {
    set +e
    for dir in "${POSTFIX_DIRS[@]}"; do
        timeout 20 "$POSTFIX" -c "$dir/etc" stop >/dev/null 2>&1
    done
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for FILE PATTERN SECONDS: until a line of FILE matches PATTERN.
wait_for() {
    local deadline=$((SECONDS + $3))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# --- sinks: first stdout line is the address; `count` on stdin reports --
declare -A SINK_ADDR SINK_FD
start_sink() { # NAME FLAGS...
    local name=$1
    shift
    mkfifo "$WORK/sink-$name.in"
    "$SINK" --listen 127.0.0.1:0 "$@" <"$WORK/sink-$name.in" >"$WORK/sink-$name.out" 2>&1 &
    PIDS+=($!)
    local fd
    exec {fd}>"$WORK/sink-$name.in"
    SINK_FD[$name]=$fd
    wait_for "$WORK/sink-$name.out" '^127.0.0.1:' 20 || die "sink $name did not start"
    SINK_ADDR[$name]=$(head -n1 "$WORK/sink-$name.out")
    say "sink $name on ${SINK_ADDR[$name]}"
}
# sink_stats NAME: prints "COUNT LAST NOW" (seconds since the sink started).
sink_stats() {
    local out=$WORK/sink-$1.out lines
    lines=$(wc -l <"$out")
    echo count >&"${SINK_FD[$1]}"
    for _ in $(seq 1 200); do
        (($(wc -l <"$out") > lines)) && break
        sleep 0.02
    done
    tail -n1 "$out" | sed -n 's/^count=\([0-9]*\) .* last=\([0-9.]*\) now=\([0-9.]*\)$/\1 \2 \3/p'
}

start_sink plain
start_sink tls --starttls

# --- certificates (tlsrelay and Postfix present the same one) -----------
"$TLSRELAY" gen-cert --hostname relay.example.test --out "$WORK/certs" >/dev/null
chmod 755 "$WORK/certs"
chmod 644 "$WORK/certs/relay.key"

# --- Postfix --------------------------------------------------------------
declare -A TARGET
start_postfix() { # NAME SINK TLS(0|1)
    local name=$1 sink=${SINK_ADDR[$2]} tls=$3 dir=$WORK/postfix-$1 port
    port=$(free_port)
    mkdir -p "$dir"/{etc,spool,data}
    chown postfix:postfix "$dir/data"
    : >"$dir/maillog"
    cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_bind_address = 127.0.0.1
myhostname = postfix.example.test
mynetworks = 127.0.0.0/8
mydestination =
relay_domains = example.test
alias_maps =
alias_database =
smtpd_peername_lookup = no
biff = no
relayhost = [${sink%:*}]:${sink##*:}
default_destination_concurrency_limit = 20
smtpd_client_connection_count_limit = 200
smtp_tls_security_level = $([[ $tls == 1 ]] && echo encrypt || echo none)
smtpd_tls_security_level = $([[ $tls == 1 ]] && echo may || echo none)
smtpd_tls_cert_file = $WORK/certs/relay.crt
smtpd_tls_key_file = $WORK/certs/relay.key
smtp_tls_loglevel = 1
smtpd_tls_loglevel = 1
# tlsrelay keeps a TLS connection to the next hop for many messages;
# Postfix does too only with this (through tlsproxy), so both reuse.
smtp_tls_connection_reuse = $([[ ${POSTFIX_TLS_REUSE:-1} == 1 ]] && echo yes || echo no)
EOF
    {
        echo "127.0.0.1:$port inet n - n - - smtpd"
        cat <<'EOF'
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
tlsproxy  unix  - - n -     0 tlsproxy
EOF
    } >"$dir/etc/master.cf"
    "$POSTFIX" -c "$dir/etc" start-fg >"$dir/postfix.out" 2>&1 </dev/null &
    PIDS+=($!)
    POSTFIX_DIRS+=("$dir")
    wait_for "$dir/maillog" 'daemon started' 30 || die "Postfix $name did not start: $(cat "$dir/postfix.out" "$dir/maillog")"
    TARGET[postfix-$name]=127.0.0.1:$port
    say "postfix $name on 127.0.0.1:$port -> $sink"
}

# --- tlsrelay ---------------------------------------------------------------
start_tlsrelay() { # NAME SINK TLS-LEVEL
    local name=$1 sink=${SINK_ADDR[$2]} level=$3 dir=$WORK/tlsrelay-$1
    mkdir -p "$dir"
    cat >"$dir/tlsrelay.toml" <<EOF
[server]
hostname = "relay.example.test"
listen = ["127.0.0.1:0"]
spool_dir = "spool"
max_connections_per_ip = 200
[tls]
cert = "$WORK/certs/relay.crt"
key = "$WORK/certs/relay.key"
[relay]
accepted_domains = ["example.test"]
[[inbound]]
name = "loopback"
remote_ips = ["127.0.0.0/8"]
allow_relay = true
[[outbound]]
name = "sink"
recipient_domains = ["example.test"]
smarthosts = ["$sink"]
tls = "$level"
[delivery]
max_connections_per_destination = 20
[dns]
reverse_lookups = false
nameservers = ["127.0.0.1:1"]
EOF
    "$TLSRELAY" --log-format json serve -c "$dir/tlsrelay.toml" >/dev/null 2>"$dir/log" </dev/null &
    PIDS+=($!)
    wait_for "$dir/log" '"message":"listening"' 30 || die "tlsrelay $name did not start: $(cat "$dir/log")"
    TARGET[tlsrelay-$name]=$(grep '"message":"listening"' "$dir/log" | head -n1 \
        | sed -n 's/.*"address":"\([0-9.:]*\)".*/\1/p')
    say "tlsrelay $name on ${TARGET[tlsrelay-$name]} -> $sink ($level)"
}

start_postfix plain plain 0
start_postfix tls tls 1
start_tlsrelay plain plain none
start_tlsrelay tls tls required

# --- one run ------------------------------------------------------------
printf 'workload\tsystem\trep\taccepted\terrors\tgen_rate\tp50_ms\tp99_ms\tsink_rate\n' >"$OUT/results.tsv"

# run WORKLOAD SYSTEM REP TARGET SINK LOADGEN-FLAGS...
run() {
    local workload=$1 system=$2 rep=$3 target=$4 sink=$5
    shift 5
    local before after result ok
    read -r c0 _ t0 <<<"$(sink_stats "$sink")"
    result=$(timeout "$RUN_TIMEOUT" "$LOADGEN" --target "$target" --sessions "$SESSIONS" \
        --messages "$MESSAGES" --size "$SIZE" --rcpts "$RCPTS" "$@" | grep '^RESULT' || true)
    [[ -n $result ]] || { say "$workload $system: the generator gave no result"; return; }
    ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$result")
    # The relay has queued what it accepted: wait until the sink has it all.
    local deadline=$((SECONDS + RUN_TIMEOUT)) c1=0 last=0
    while :; do
        read -r c1 last _ <<<"$(sink_stats "$sink")"
        ((c1 - c0 >= ok)) && break
        ((SECONDS < deadline)) || { say "$workload $system: sink got $((c1 - c0)) of $ok"; break; }
        sleep 0.2
    done
    local sink_rate
    sink_rate=$(python3 -c "print(f'{($c1 - $c0) / max($last - $t0, 1e-6):.1f}')")
    local f
    f() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$result"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$system" "$rep" "$ok" \
        "$(f errors)" "$(f rate)" "$(f p50_ms)" "$(f p99_ms)" "$sink_rate" >>"$OUT/results.tsv"
    say "$workload rep $rep $system: $(f rate) msg/s accepted, $sink_rate msg/s at the sink, p50 $(f p50_ms) ms, p99 $(f p99_ms) ms, $(f errors) errors"
}

# xcheck_source REP ADDR LABEL [SINK]: smtp-source, the same workload, timed
# by the wall clock around it; with SINK, also counted at that sink.
xcheck_source() {
    local rep=$1 addr=$2 label=$3 sink=${4:-} start end c0=0 t0=0 c1=0 last=0
    [[ -z $sink ]] || read -r c0 _ t0 <<<"$(sink_stats "$sink")"
    start=$(date +%s.%N)
    timeout "$RUN_TIMEOUT" /usr/sbin/smtp-source -4 -d -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
        -r "$RCPTS" -f loadgen@example.net -t rcpt@example.test -M loadgen.example.net "$addr" \
        || say "smtp-source failed"
    end=$(date +%s.%N)
    local rate sink_rate=-
    rate=$(python3 -c "print(f'{$MESSAGES / ($end - $start):.1f}')")
    if [[ -n $sink ]]; then
        local deadline=$((SECONDS + RUN_TIMEOUT))
        while read -r c1 last _ <<<"$(sink_stats "$sink")"; ((c1 - c0 < MESSAGES)); do
            ((SECONDS < deadline)) || break
            sleep 0.2
        done
        sink_rate=$(python3 -c "print(f'{($c1 - $c0) / max($last - $t0, 1e-6):.1f}')")
    fi
    printf 'xcheck\t%s\t%s\t%s\t0\t%s\t-\t-\t%s\n' "$label" "$rep" "$MESSAGES" "$rate" "$sink_rate" >>"$OUT/results.tsv"
    say "xcheck rep $rep $label: $rate msg/s, $sink_rate msg/s at the sink"
}

start_smtp_sink() {
    local port
    port=$(free_port)
    /usr/sbin/smtp-sink -u postfix -4 127.0.0.1:"$port" 256 >"$WORK/smtp-sink.out" 2>&1 </dev/null &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.05
    done
    SMTP_SINK_ADDR=127.0.0.1:$port
}

FLAGS=()
[[ $PIPELINING == 1 ]] && FLAGS+=(--pipelining)
for rep in $(seq 1 "$REPS"); do
    # Alternate who goes first, so a drift in the machine's load is shared.
    if ((rep % 2)); then order="postfix tlsrelay"; else order="tlsrelay postfix"; fi
    for workload in $WORKLOADS; do
        case $workload in
            null)
                run null sink "$rep" "${SINK_ADDR[plain]}" plain --reuse "${FLAGS[@]}"
                run null-tls sink "$rep" "${SINK_ADDR[tls]}" tls --reuse --starttls "${FLAGS[@]}"
                ;;
            W1 | W2 | W3)
                for system in $order; do
                    case $workload in
                        W1) run W1 "$system" "$rep" "${TARGET[$system-plain]}" plain --reuse "${FLAGS[@]}" ;;
                        W2) run W2 "$system" "$rep" "${TARGET[$system-plain]}" plain --new-connection-per-message "${FLAGS[@]}" ;;
                        W3) run W3 "$system" "$rep" "${TARGET[$system-tls]}" tls --reuse --starttls "${FLAGS[@]}" ;;
                    esac
                done
                ;;
            xcheck)
                [[ -n ${SMTP_SINK_ADDR:-} ]] || start_smtp_sink
                run xcheck "loadgen>sink" "$rep" "${SINK_ADDR[plain]}" plain --reuse
                xcheck_source "$rep" "${SINK_ADDR[plain]}" "smtp-source>sink" plain
                # smtp-sink does not count for us: its rate is the generator's.
                result=$(timeout "$RUN_TIMEOUT" "$LOADGEN" --target "$SMTP_SINK_ADDR" --sessions "$SESSIONS" \
                    --messages "$MESSAGES" --size "$SIZE" --rcpts "$RCPTS" --reuse | grep '^RESULT' || true)
                rate=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$result")
                printf 'xcheck\tloadgen>smtp-sink\t%s\t%s\t0\t%s\t-\t-\t-\n' "$rep" "$MESSAGES" "$rate" >>"$OUT/results.tsv"
                say "xcheck rep $rep loadgen>smtp-sink: $rate msg/s"
                xcheck_source "$rep" "$SMTP_SINK_ADDR" "smtp-source>smtp-sink"
                # Through a relay, where the figures of issue 8 are made;
                # the generators take turns going first.
                for relay in tlsrelay postfix; do
                    for generator in $(((rep % 2)) && echo loadgen smtp-source || echo smtp-source loadgen); do
                        if [[ $generator == loadgen ]]; then
                            run xcheck "loadgen>$relay" "$rep" "${TARGET[$relay-plain]}" plain --reuse
                        else
                            xcheck_source "$rep" "${TARGET[$relay-plain]}" "smtp-source>$relay" plain
                        fi
                    done
                done
                ;;
            *) die "unknown workload $workload" ;;
        esac
    done
done

# --- report -----------------------------------------------------------------
python3 - "$OUT/results.tsv" >"$OUT/results.md" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(rs, key):
    vals = [float(r[key]) for r in rs if r[key] not in ("-", "")]
    return statistics.median(vals) if vals else None
def fmt(v, d=0):
    return "-" if v is None else f"{v:.{d}f}"
groups = {}
for r in rows:
    groups.setdefault((r["workload"], r["system"]), []).append(r)
print("| workload | system | runs | accepted msg/s | delivered msg/s (at sink) | p50 ms | p99 ms | errors |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (w, s), rs in groups.items():
    errors = sum(int(r["errors"] or 0) for r in rs)
    print(f"| {w} | {s} | {len(rs)} | {fmt(med(rs,'gen_rate'))} | {fmt(med(rs,'sink_rate'))} "
          f"| {fmt(med(rs,'p50_ms'),2)} | {fmt(med(rs,'p99_ms'),2)} | {errors} |")
print()
print("| workload | tlsrelay/Postfix accepted | tlsrelay/Postfix delivered | p99 tlsrelay/Postfix | tlsrelay delivered / null relay |")
print("| --- | --- | --- | --- | --- |")
null = {"W1": "null", "W2": "null", "W3": "null-tls"}
for w in ("W1", "W2", "W3"):
    t, p = groups.get((w, "tlsrelay")), groups.get((w, "postfix"))
    if not t or not p:
        continue
    ratio = lambda k: (med(t, k) / med(p, k)) if med(p, k) else None
    n = groups.get((null[w], "sink"))
    of_null = med(t, "sink_rate") / med(n, "sink_rate") if n and med(n, "sink_rate") else None
    print(f"| {w} | {fmt(ratio('gen_rate'),2)} | {fmt(ratio('sink_rate'),2)} | {fmt(ratio('p99_ms'),2)} | {fmt(of_null,2)} |")
EOF
# What really went over TLS, from the peers' own logs.
{
    echo
    echo "Postfix (tls) outbound TLS connections: $(grep -c 'TLS connection established to' "$WORK/postfix-tls/maillog" || true)," \
        "inbound: $(grep -c 'TLS connection established from' "$WORK/postfix-tls/maillog" || true);" \
        "tlsrelay (tls) deliveries over TLSv1.3: $(grep -c '"tls":"TLSv1.3' "$WORK/tlsrelay-tls/log" || true)"
} >>"$OUT/results.md"
say "raw: $OUT/results.tsv; table: $OUT/results.md"
cat "$OUT/results.md"
