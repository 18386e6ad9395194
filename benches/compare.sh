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
#   WORKLOADS="null W1 W2 W3 W4a W4b W5 fsync" (also: W6, idle sessions;
#   xcheck, our generator against smtp-source; steady, W1 for 60 s with
#   delivered/accepted, settings in compare_steady.sh; queue, a large
#   queue of deferred messages, settings in compare_queue.sh). W4a: 100 KB messages
#   (W4A_MESSAGES, default MESSAGES/10, at least 100); W4b: 10 MB
#   (W4B_MESSAGES, default MESSAGES/100, at least 20, from W4B_SESSIONS=10
#   sessions), both with each relay's peak RSS; W5: 50 recipients
#   (W5_RCPTS) per 2 KB message (W5_MESSAGES, default MESSAGES/5, at least
#   200). W1far: W1 to a next hop FAR_RTT_MS=10 ms away (the sink waits
#   that long before each write of replies; loopback has no round trip
#   to speak of), so the round trips per delivered message count;
#   W1FAR_MESSAGES, default MESSAGES/5, at least 500.
#   fsync and W6 run once, after the repetitions: fsync, W1 with
#   FSYNC_MESSAGES=1000 under strace, counting sync calls per message;
#   W6, W6_SESSIONS=10000 idle sessions to tlsrelay and
#   W6_POSTFIX_SESSIONS=2000 to Postfix (a process each), plaintext and
#   after STARTTLS, memory per session (W6_MODES="plain starttls",
#   W6_TIMEOUT=900 s to open them).
#   PIPELINING=0 (1: the generator pipelines), RUN_TIMEOUT=300 (s, per run)
#   POSTFIX_TLS_REUSE=1 (0: Postfix's default, a new outbound TLS connection
#   per message)
#   BASELINE=PATH: another tlsrelay binary (say, the last release's) run
#   beside the current one as system "baseline" in W1-W5, same settings,
#   same alternating order, for a before/after in one run; the report adds
#   the tlsrelay/baseline ratios.
#   DANE=1: the cost of DANE when the destination has none (issue 15).
#   Both tlsrelay systems route by MX instead of a smarthost: nsd serves a
#   DNSSEC-signed example.test (MX, A 127.0.0.1, no TLSA, so a secure
#   denial) made for the run with ldns, each relay validates it from that
#   zone's keys, with `tls = "opportunistic"` (plain) and "required" (tls)
#   so DANE is asked; "tlsrelay" has `[delivery] dane = true`, "baseline"
#   the same binary (or BASELINE=) with `dane = false`. Postfix is
#   unchanged. Needs nsd and ldnsutils (installed if missing).
#   Every tlsrelay instance serves its metrics (on a port the OS picked);
#   each run of tlsrelay or baseline reads tlsrelay_spool_syncs_total
#   before and after, for the column syncs_per_msg.
#   OUT=target/compare (results.tsv, fsync.tsv, idle.tsv, steady.tsv, queue.tsv,
#   results.md), KEEP_WORK=1 keeps the
#   instances' folder and logs under /tmp
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-2048}
RCPTS=${RCPTS:-1}
WORKLOADS=${WORKLOADS:-"null W1 W2 W3 W4a W4b W5 fsync"}
W4A_SIZE=${W4A_SIZE:-102400}
W4A_MESSAGES=${W4A_MESSAGES:-$((MESSAGES / 10 > 100 ? MESSAGES / 10 : 100))}
W4B_SIZE=${W4B_SIZE:-10485760}
W4B_MESSAGES=${W4B_MESSAGES:-$((MESSAGES / 100 > 20 ? MESSAGES / 100 : 20))}
W4B_SESSIONS=${W4B_SESSIONS:-$((SESSIONS < 10 ? SESSIONS : 10))}
W5_RCPTS=${W5_RCPTS:-50}
W5_MESSAGES=${W5_MESSAGES:-$((MESSAGES / 5 > 200 ? MESSAGES / 5 : 200))}
W1FAR_MESSAGES=${W1FAR_MESSAGES:-$((MESSAGES / 5 > 500 ? MESSAGES / 5 : 500))}
FAR_RTT_MS=${FAR_RTT_MS:-10}
FSYNC_MESSAGES=${FSYNC_MESSAGES:-1000}
W6_SESSIONS=${W6_SESSIONS:-10000}
W6_POSTFIX_SESSIONS=${W6_POSTFIX_SESSIONS:-$((W6_SESSIONS < 2000 ? W6_SESSIONS : 2000))}
W6_MODES=${W6_MODES:-"plain starttls"}
W6_TIMEOUT=${W6_TIMEOUT:-900}
PIPELINING=${PIPELINING:-0}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
OUT=${OUT:-target/compare}
POSTFIX=/usr/sbin/postfix
BENCHES=$PWD/benches
# procstat: the processes of a relay, their memory and CPU (benches/procstat.py).
procstat() { python3 "$BENCHES/procstat.py" "$@"; }

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root: a private Postfix instance must be started by root"
# A descriptor per session: W6 holds 10,000 at once, in the generator and
# in each relay (Postfix's daemons inherit this limit from its master).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
[[ $(ulimit -n) == 65536 ]] || say "ulimit -n is $(ulimit -n) (the hard limit here)"
wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }

# --- Postfix from Debian's packages -------------------------------------
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'install ok installed'; then
    say "installing postfix (debconf: No configuration)"
    export DEBIAN_FRONTEND=noninteractive
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    apt-get update -q
    apt-get install -y -q postfix
fi
DANE=${DANE:-0}
if [[ $DANE == 1 ]] && ! { command -v nsd && command -v ldns-signzone; } >/dev/null; then
    say "installing nsd and ldnsutils (DANE=1)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nsd ldnsutils
fi
if wants fsync && ! command -v strace >/dev/null; then
    say "installing strace (for the fsync count)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace
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
BASELINE=${BASELINE:-}
# DANE=1 compares DANE on with DANE off: by default the same binary.
[[ $DANE == 1 && -z $BASELINE ]] && BASELINE=$TLSRELAY
[[ -z $BASELINE || -x $BASELINE ]] || die "BASELINE=$BASELINE is not an executable"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/tlsrelay-compare.XXXXXX)
chmod 755 "$WORK"
say "work folder $WORK"

# --- cleanup: only what this script started, by pid ---------------------
PIDS=()
POSTFIX_DIRS=()
# forget_pid PID: a process this script started and has already waited for.
forget_pid() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}
# stop_pid PID: TERM, up to 10 s, then KILL; waited for and forgotten.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_pid "$1"
}
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
declare -A SINK_ADDR SINK_FD SINK_PID
start_sink() { # NAME FLAGS...
    local name=$1
    shift
    mkfifo "$WORK/sink-$name.in"
    "$SINK" --listen 127.0.0.1:0 "$@" <"$WORK/sink-$name.in" >"$WORK/sink-$name.out" 2>&1 &
    PIDS+=($!)
    SINK_PID[$name]=$!
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
    for _ in $(seq 1 2000); do
        (($(wc -l <"$out") > lines)) && break
        sleep 0.002
    done
    tail -n1 "$out" | sed -n 's/^count=\([0-9]*\) .* last=\([0-9.]*\) now=\([0-9.]*\)$/\1 \2 \3/p'
}

start_sink plain
start_sink tls --starttls
wants W1far && start_sink far --rtt-ms "$FAR_RTT_MS"

# --- certificates (tlsrelay and Postfix present the same one) -----------
"$TLSRELAY" gen-cert --hostname relay.example.test --out "$WORK/certs" >/dev/null
chmod 755 "$WORK/certs"
chmod 644 "$WORK/certs/relay.key"

# --- Postfix --------------------------------------------------------------
# TARGET[SYSTEM-NAME]: where it listens; ROOT[SYSTEM-NAME]: the pid whose
# process tree is that relay (tlsrelay's one process, Postfix's master);
# METRICS[TARGET]: where a tlsrelay at that address serves its metrics.
declare -A TARGET ROOT WRAPPER METRICS
# start_postfix NAME SINK TLS(0|1) [IDLE]: with IDLE, an instance for W6
# that takes IDLE sessions at once from one client, offers STARTTLS and
# lets an idle smtpd exit after 2 s (max_idle) so a measurement starts
# from the bare daemons.
start_postfix() {
    local name=$1 sink=${SINK_ADDR[$2]} tls=$3 idle=${4:-} dir=$WORK/postfix-$1 port
    port=$(free_port)
    rm -rf "$dir"
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
smtpd_client_connection_count_limit = $([[ -n $idle ]] && echo 0 || echo 200)
smtp_tls_security_level = $([[ $tls == 1 ]] && echo encrypt || echo none)
smtpd_tls_security_level = $([[ $tls == 1 || -n $idle ]] && echo may || echo none)
smtpd_tls_cert_file = $WORK/certs/relay.crt
smtpd_tls_key_file = $WORK/certs/relay.key
smtp_tls_loglevel = 1
smtpd_tls_loglevel = 1
# tlsrelay keeps a TLS connection to the next hop for many messages;
# Postfix does too only with this (through tlsproxy), so both reuse.
smtp_tls_connection_reuse = $([[ ${POSTFIX_TLS_REUSE:-1} == 1 ]] && echo yes || echo no)
# W4's 10 MB messages: the default (10,240,000 bytes) is below them; this
# is tlsrelay's default max_message_size, 35 MiB.
message_size_limit = 36700160
EOF
    if [[ -n $idle ]]; then
        cat >>"$dir/etc/main.cf" <<EOF
default_process_limit = $((idle + 100))
max_idle = 2s
EOF
    fi
    {
        echo "127.0.0.1:$port inet n - n - $([[ -n $idle ]] && echo $((idle + 100)) || echo -) smtpd"
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
    [[ -z ${EXTRA_MAIN_CF:-} ]] || echo "$EXTRA_MAIN_CF" >>"$dir/etc/main.cf"
    TARGET[postfix-$name]=127.0.0.1:$port
    launch_postfix "$name"
    say "postfix $name on 127.0.0.1:$port -> $sink"
}

# launch_postfix NAME: starts an instance made by start_postfix (again,
# with its queue, after stop_postfix); LAUNCHED_AT is the moment it was
# started ($EPOCHREALTIME).
launch_postfix() {
    local name=$1 dir=$WORK/postfix-$1 started
    started=$(grep -c 'daemon started' "$dir/maillog" || true)
    LAUNCHED_AT=$EPOCHREALTIME
    "$POSTFIX" -c "$dir/etc" start-fg >>"$dir/postfix.out" 2>&1 </dev/null &
    PIDS+=($!)
    WRAPPER[postfix-$name]=$!
    POSTFIX_DIRS+=("$dir")
    local deadline=$((SECONDS + 60))
    until (($(grep -c 'daemon started' "$dir/maillog" || true) > started)); do
        ((SECONDS < deadline)) || die "Postfix $name did not start: $(cat "$dir/postfix.out" "$dir/maillog")"
        sleep 0.05
    done
    ROOT[postfix-$name]=$(tr -d ' \n' <"$dir/spool/pid/master.pid")
    [[ -d /proc/${ROOT[postfix-$name]} ]] || die "Postfix $name: no master process"
}

# stop_postfix NAME: stops an instance (W6 starts a fresh one per measurement).
stop_postfix() {
    local dir=$WORK/postfix-$1 keep=() d
    timeout 60 "$POSTFIX" -c "$dir/etc" stop >/dev/null 2>&1 || say "postfix $1: stop failed"
    stop_pid "${WRAPPER[postfix-$1]}"
    for d in "${POSTFIX_DIRS[@]}"; do [[ $d == "$dir" ]] || keep+=("$d"); done
    POSTFIX_DIRS=("${keep[@]}")
}

# --- tlsrelay ---------------------------------------------------------------
# start_tlsrelay NAME SINK TLS-LEVEL [IDLE]: with IDLE, the connection
# limits allow IDLE sessions at once from one address (W6). SYSTEM and
# BINARY in the environment run another build under another name
# (BASELINE); METRICS_LISTEN, where it serves its metrics (default: a
# free port).
start_tlsrelay() {
    local system=${SYSTEM:-tlsrelay} binary=${BINARY:-$TLSRELAY}
    local name=$1 sink=${SINK_ADDR[$2]} level=$3 idle=${4:-} dir=$WORK/$system-$1
    local metrics=${METRICS_LISTEN:-127.0.0.1:$(free_port)}
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/tlsrelay.toml" <<EOF
[server]
hostname = "relay.example.test"
listen = ["${LISTEN:-127.0.0.1:0}"]
spool_dir = "spool"
max_connections_per_ip = $([[ -n $idle ]] && echo $((idle + 100)) || echo 200)
$([[ -n $idle ]] && echo "max_connections = $((idle + 100))")
[tls]
cert = "$WORK/certs/relay.crt"
key = "$WORK/certs/relay.key"
[relay]
accepted_domains = $([[ $DANE == 1 ]] && echo "[]" || echo "[\"example.test\"]")
[[inbound]]
name = "loopback"
remote_ips = ["127.0.0.0/8"]
allow_relay = true
[[outbound]]
name = "sink"
recipient_domains = ["example.test"]
$([[ $DANE == 1 ]] || echo "smarthosts = [\"$sink\"]")
tls = "$level"
[delivery]
max_connections_per_destination = 20
$([[ $DANE == 1 ]] && printf 'mx_port = %s\ndane = %s\n' "${sink##*:}" "$([[ $system == baseline ]] && echo false || echo true)")
[admin]
metrics_listen = "$metrics"
[dns]
reverse_lookups = false
$([[ $DANE == 1 ]] && printf 'nameservers = ["127.0.0.1:%s"]\ntrust_anchor = "%s"\n' "$DNS_PORT" "$WORK/dns/anchor" || echo 'nameservers = ["127.0.0.1:1"]')
EOF
    [[ -z ${EXTRA_TOML:-} ]] || echo "$EXTRA_TOML" >>"$dir/tlsrelay.toml"
    : >"$dir/log"
    BINARY=$binary launch_tlsrelay "$system" "$name"
    METRICS[${TARGET[$system-$name]}]=$metrics
    say "$system $name on ${TARGET[$system-$name]} -> $sink ($level)"
}

# launch_tlsrelay SYSTEM NAME: starts an instance made by start_tlsrelay
# (again, with its spool, after it was stopped); the log is appended to.
# LAUNCHED_AT is the moment it was started ($EPOCHREALTIME).
launch_tlsrelay() {
    local system=$1 name=$2 dir=$WORK/$1-$2 started
    started=$(grep -c '"message":"listening"' "$dir/log" || true)
    LAUNCHED_AT=$EPOCHREALTIME
    "${BINARY:-$TLSRELAY}" --log-format json serve -c "$dir/tlsrelay.toml" >/dev/null 2>>"$dir/log" </dev/null &
    PIDS+=($!)
    ROOT[$system-$name]=$!
    local deadline=$((SECONDS + 60))
    until (($(grep -c '"message":"listening"' "$dir/log" || true) > started)); do
        kill -0 "${ROOT[$system-$name]}" 2>/dev/null && ((SECONDS < deadline)) \
            || die "$system $name did not start: $(tail -n 20 "$dir/log")"
        sleep 0.05
    done
    TARGET[$system-$name]=$(grep '"message":"listening"' "$dir/log" | tail -n1 \
        | sed -n 's/.*"address":"\([0-9.:]*\)".*/\1/p')
}

# relay_metric ADDR NAME{LABELS}: one value from the metrics a tlsrelay
# serves at ADDR (nothing if it has no such series or does not answer).
relay_metric() {
    curl -s --max-time 10 "http://$1/metrics" | awk -v m="$2" '$1 == m { print $2; exit }' || true
}

# --- DANE=1: a signed example.test served by nsd ------------------------
# The zone is its own trust anchor (its KSK and ZSK, as [dns]
# trust_anchor wants them); no TLSA record, so the relay gets a secure
# denial for _PORT._tcp.mx.example.test and DANE does not apply.
start_signed_dns() {
    local dir=$WORK/dns ksk zsk
    mkdir -p "$dir"
    # A port free for both UDP and TCP (nsd serves both).
    DNS_PORT=$(python3 -c 'import socket
for _ in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", u.getsockname()[1]))
    except OSError:
        continue
    print(u.getsockname()[1])
    break')
    printf '%s\n' '$ORIGIN example.test.' '$TTL 3600' \
        '@ IN SOA ns1 hostmaster 1 3600 900 604800 300' '@ IN NS ns1' \
        'ns1 IN A 127.0.0.1' '@ IN MX 10 mx' 'mx IN A 127.0.0.1' >"$dir/example.test.zone"
    ksk=$(cd "$dir" && ldns-keygen -a ECDSAP256SHA256 -k example.test)
    zsk=$(cd "$dir" && ldns-keygen -a ECDSAP256SHA256 example.test)
    (cd "$dir" && ldns-signzone -n -t 0 -o example.test -f example.test.signed example.test.zone "$ksk" "$zsk")
    cat "$dir/$ksk.key" "$dir/$zsk.key" >"$dir/anchor"
    printf '%s\n' 'server:' "    ip-address: 127.0.0.1@$DNS_PORT" '    username: ""' '    chroot: ""' \
        '    database: ""' "    zonelistfile: \"$dir/zone.list\"" "    pidfile: \"$dir/nsd.pid\"" \
        "    xfrdfile: \"$dir/xfrd.state\"" "    xfrdir: \"$dir\"" "    logfile: \"$dir/nsd.log\"" \
        'remote-control:' '    control-enable: no' 'zone:' '    name: example.test' \
        "    zonefile: \"$dir/example.test.signed\"" >"$dir/nsd.conf"
    nsd -d -c "$dir/nsd.conf" >"$dir/nsd.out" 2>&1 &
    PIDS+=($!)
    wait_for "$dir/nsd.log" 'nsd started' 10 || die "nsd did not start: $(cat "$dir/nsd.out" "$dir/nsd.log" 2>/dev/null)"
    say "nsd on 127.0.0.1:$DNS_PORT serving a signed example.test (no TLSA)"
}
[[ $DANE == 1 ]] && start_signed_dns

start_postfix plain plain 0
start_postfix tls tls 1
# DANE=1: "none" would keep its own check; DANE is asked of opportunistic.
PLAIN_LEVEL=$([[ $DANE == 1 ]] && echo opportunistic || echo none)
start_tlsrelay plain plain "$PLAIN_LEVEL"
start_tlsrelay tls tls required
if [[ -n $BASELINE ]]; then
    SYSTEM=baseline BINARY=$BASELINE start_tlsrelay plain plain "$PLAIN_LEVEL"
    SYSTEM=baseline BINARY=$BASELINE start_tlsrelay tls tls required
fi
if wants W1far; then
    start_postfix far far 0
    start_tlsrelay far far "$PLAIN_LEVEL"
    [[ -z $BASELINE ]] || SYSTEM=baseline BINARY=$BASELINE start_tlsrelay far far "$PLAIN_LEVEL"
fi

# --- one run ------------------------------------------------------------
COLUMNS_TSV='workload\tsystem\trep\taccepted\terrors\tgen_rate\tp50_ms\tp99_ms\tsink_rate\tmessages\tsize\trcpts\tsessions\tcpu_s\tcpu_s_per_1k\tpeak_rss\tpeak_rss_sampled\tpeak_pss_sampled\tsyncs_per_msg'
printf '%b\n' "$COLUMNS_TSV" >"$OUT/results.tsv"

# What a sampler (procstat.py sample) is doing in the background, if anything.
SAMPLER_PID=
# run WORKLOAD SYSTEM REP TARGET SINK ROOT LOADGEN-FLAGS...
# ROOT: the pid whose process tree is the system under test (its CPU
# time is read before and after). The environment may override
# R_MESSAGES, R_SIZE, R_RCPTS, R_SESSIONS; R_PEAK=1 also records the peak
# RSS (VmHWM reset first for tlsrelay; the sampled sum for all).
run() {
    local workload=$1 system=$2 rep=$3 target=$4 sink=$5 root=$6
    shift 6
    local messages=${R_MESSAGES:-$MESSAGES} size=${R_SIZE:-$SIZE} rcpts=${R_RCPTS:-$RCPTS}
    local sessions=${R_SESSIONS:-$SESSIONS} result ok cpu0 cpu1 peak='' sampled='' sampled_pss='' c0 t0
    local metrics=${METRICS[$target]:-} syncs0='' syncs1='' syncs=-
    [[ -z $metrics ]] || syncs0=$(relay_metric "$metrics" tlsrelay_spool_syncs_total)
    if [[ ${R_PEAK:-0} == 1 ]]; then
        # Peak RSS of this run only: clear_refs 5 resets VmHWM to the current RSS.
        [[ $system == tlsrelay || $system == baseline ]] && echo 5 >"/proc/$root/clear_refs"
        # python3 itself in the background (not the procstat function, whose
        # subshell would leave python running when signalled).
        python3 "$BENCHES/procstat.py" sample --interval 0.1 --max-seconds $((2 * RUN_TIMEOUT + 60)) \
            "$root" >"$WORK/sample.out" &
        SAMPLER_PID=$!
        PIDS+=("$SAMPLER_PID")
    fi
    cpu0=$(procstat tree "$root" | sed -n 's/.* cpu=\([0-9.]*\).*/\1/p')
    # The sink's clock last, right before the generator starts: the rate
    # at the sink counts from here. (Read before the CPU figure, it also
    # counted python's start, ~0.1 s: half of a null-relay run of 5,000
    # messages, whose rate it halved.)
    read -r c0 _ t0 <<<"$(sink_stats "$sink")"
    result=$(timeout "$RUN_TIMEOUT" "$LOADGEN" --target "$target" --sessions "$sessions" \
        --messages "$messages" --size "$size" --rcpts "$rcpts" "$@" | grep '^RESULT' || true)
    if [[ -z $result ]]; then
        say "$workload $system: the generator gave no result"
        [[ -z $SAMPLER_PID ]] || { stop_pid "$SAMPLER_PID"; SAMPLER_PID=; }
        return
    fi
    ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$result")
    # The relay has queued what it accepted: wait until the sink has it all.
    local deadline=$((SECONDS + RUN_TIMEOUT)) c1=0 last=0
    while :; do
        read -r c1 last _ <<<"$(sink_stats "$sink")"
        ((c1 - c0 >= ok)) && break
        ((SECONDS < deadline)) || { say "$workload $system: sink got $((c1 - c0)) of $ok"; break; }
        sleep 0.2
    done
    cpu1=$(procstat tree "$root" | sed -n 's/.* cpu=\([0-9.]*\).*/\1/p')
    # Syncs per accepted message, the delivery's done records included
    # (they are written unsynced, with the next batch).
    [[ -z $syncs0 ]] || syncs1=$(relay_metric "$metrics" tlsrelay_spool_syncs_total)
    [[ -z $syncs1 || $ok == 0 ]] || syncs=$(python3 -c "print(f'{($syncs1 - $syncs0) / $ok:.3f}')")
    if [[ -n $SAMPLER_PID ]]; then
        stop_pid "$SAMPLER_PID"
        SAMPLER_PID=
        sampled=$(sed -n 's/^peak_rss=\([0-9]*\) .*/\1/p' "$WORK/sample.out")
        sampled_pss=$(sed -n 's/.* peak_pss=\([0-9]*\) .*/\1/p' "$WORK/sample.out")
        if [[ $system == tlsrelay || $system == baseline ]]; then
            peak=$(($(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$root/status") * 1024))
        fi
    fi
    local sink_rate cpu cpu_1k
    sink_rate=$(python3 -c "print(f'{($c1 - $c0) / max($last - $t0, 1e-6):.1f}')")
    cpu=$(python3 -c "print(f'{$cpu1 - $cpu0:.2f}')")
    cpu_1k=$(python3 -c "print(f'{($cpu1 - $cpu0) * 1000 / $ok:.3f}' if $ok else '-')")
    f() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$result"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$system" "$rep" "$ok" \
        "$(f errors)" "$(f rate)" "$(f p50_ms)" "$(f p99_ms)" "$sink_rate" \
        "$messages" "$size" "$rcpts" "$sessions" "$cpu" "$cpu_1k" "${peak:--}" "${sampled:--}" "${sampled_pss:--}" \
        "$syncs" >>"$OUT/results.tsv"
    say "$workload rep $rep $system: $(f rate) msg/s accepted, $sink_rate msg/s at the sink, p50 $(f p50_ms) ms, p99 $(f p99_ms) ms, $(f errors) errors, ${cpu} CPU s${peak:+, peak RSS $peak}${sampled:+ (sampled: RSS $sampled, PSS $sampled_pss)}${syncs1:+, $syncs syncs per message}"
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
    printf 'xcheck\t%s\t%s\t%s\t0\t%s\t-\t-\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\n' "$label" "$rep" "$MESSAGES" "$rate" \
        "$sink_rate" "$MESSAGES" "$SIZE" "$RCPTS" "$SESSIONS" >>"$OUT/results.tsv"
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
    # The baseline runs right before or after the current build, in turn.
    if [[ -n $BASELINE ]]; then
        if ((rep % 2)); then order="$order baseline"; else order="baseline $order"; fi
    fi
    for workload in $WORKLOADS; do
        case $workload in
            null)
                run null sink "$rep" "${SINK_ADDR[plain]}" plain "${SINK_PID[plain]}" --reuse "${FLAGS[@]}"
                run null-tls sink "$rep" "${SINK_ADDR[tls]}" tls "${SINK_PID[tls]}" --reuse --starttls "${FLAGS[@]}"
                ;;
            W1 | W1far | W2 | W3 | W4a | W4b | W5)
                for system in $order; do
                    plain=("$system" "$rep" "${TARGET[$system-plain]}" plain "${ROOT[$system-plain]}")
                    case $workload in
                        W1) run W1 "${plain[@]}" --reuse "${FLAGS[@]}" ;;
                        W1far) R_MESSAGES=$W1FAR_MESSAGES run W1far "$system" "$rep" "${TARGET[$system-far]}" far \
                            "${ROOT[$system-far]}" --reuse "${FLAGS[@]}" ;;
                        W2) run W2 "${plain[@]}" --new-connection-per-message "${FLAGS[@]}" ;;
                        W3) run W3 "$system" "$rep" "${TARGET[$system-tls]}" tls "${ROOT[$system-tls]}" \
                            --reuse --starttls "${FLAGS[@]}" ;;
                        W4a) R_SIZE=$W4A_SIZE R_MESSAGES=$W4A_MESSAGES R_PEAK=1 \
                            run W4a "${plain[@]}" --reuse "${FLAGS[@]}" ;;
                        W4b) R_SIZE=$W4B_SIZE R_MESSAGES=$W4B_MESSAGES R_SESSIONS=$W4B_SESSIONS R_PEAK=1 \
                            run W4b "${plain[@]}" --reuse "${FLAGS[@]}" ;;
                        W5) R_RCPTS=$W5_RCPTS R_MESSAGES=$W5_MESSAGES \
                            run W5 "${plain[@]}" --reuse "${FLAGS[@]}" ;;
                    esac
                done
                ;;
            fsync | W6 | steady | queue) ;; # once, after the repetitions
            xcheck)
                [[ -n ${SMTP_SINK_ADDR:-} ]] || start_smtp_sink
                run xcheck "loadgen>sink" "$rep" "${SINK_ADDR[plain]}" plain "${SINK_PID[plain]}" --reuse
                xcheck_source "$rep" "${SINK_ADDR[plain]}" "smtp-source>sink" plain
                # smtp-sink does not count for us: its rate is the generator's.
                result=$(timeout "$RUN_TIMEOUT" "$LOADGEN" --target "$SMTP_SINK_ADDR" --sessions "$SESSIONS" \
                    --messages "$MESSAGES" --size "$SIZE" --rcpts "$RCPTS" --reuse | grep '^RESULT' || true)
                rate=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$result")
                printf 'xcheck\tloadgen>smtp-sink\t%s\t%s\t0\t%s\t-\t-\t-\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\n' "$rep" "$MESSAGES" "$rate" \
                    "$MESSAGES" "$SIZE" "$RCPTS" "$SESSIONS" >>"$OUT/results.tsv"
                say "xcheck rep $rep loadgen>smtp-sink: $rate msg/s"
                xcheck_source "$rep" "$SMTP_SINK_ADDR" "smtp-source>smtp-sink"
                # Through a relay, where the figures of issue 8 are made;
                # the generators take turns going first.
                for relay in tlsrelay postfix; do
                    for generator in $( ((rep % 2)) && echo loadgen smtp-source || echo smtp-source loadgen); do
                        if [[ $generator == loadgen ]]; then
                            run xcheck "loadgen>$relay" "$rep" "${TARGET[$relay-plain]}" plain "${ROOT[$relay-plain]}" --reuse
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

# --- fsync: W1 once per relay under strace, after the timed runs ---------
# strace stops the relay at every system call, so this run is slow and
# not timed with the others; it counts the sync calls per message, the
# delivery to the sink included. All processes of the relay are attached
# (Postfix: the master and its live daemons, such as a cleanup kept from
# an earlier run) and -f follows those forked later.
printf 'system\tmessages\tcalls\tper_message\tby_call\tcallers\tlate_callers\n' >"$OUT/fsync.tsv"
STRACE_PID=
fsync_run() { # SYSTEM
    local system=$1 root=${ROOT[$1-plain]} log=$WORK/strace-$1.log pids=() attach=() tasks=() p n ok counted
    mapfile -t pids < <(procstat pids "$root")
    for p in "${pids[@]}"; do attach+=(-p "$p"); done
    procstat tasks "$root" >"$WORK/strace-$system.tasks"
    strace -f -o "$log" -e trace=fsync,fdatasync,sync_file_range,syncfs "${attach[@]}" 2>"$WORK/strace-$system.err" &
    STRACE_PID=$!
    PIDS+=("$STRACE_PID")
    # "Process N attached", one line per thread: wait for every thread.
    # "Process N attached" or "Process N attached with K threads".
    n=$(wc -l <"$WORK/strace-$system.tasks")
    attached() { awk '/attached with/ { n += $(NF - 1); next } /attached/ { n++ } END { print n + 0 }' "$WORK/strace-$system.err"; }
    for _ in $(seq 1 200); do
        (($(attached) >= n)) && break
        sleep 0.1
    done
    say "fsync $system: strace attached to $(attached) of $n threads in ${#pids[@]} processes"
    R_MESSAGES=$FSYNC_MESSAGES run fsync "$system" 1 "${TARGET[$system-plain]}" plain "$root" --reuse "${FLAGS[@]}"
    ok=$(tail -n1 "$OUT/results.tsv" | awk -F'\t' '$1 == "fsync" { print $4 }')
    # Delivered is not yet removed from the spool: give that a moment.
    sleep 1
    kill -INT "$STRACE_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$STRACE_PID" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$STRACE_PID"
    STRACE_PID=
    mapfile -t tasks <"$WORK/strace-$system.tasks"
    counted=$(procstat fsyncs "$log" "${tasks[@]}" || echo calls=0)
    f() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$counted"; }
    local calls
    calls=$(f calls)
    ok=${ok:-0} calls=${calls:-0}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$ok" "$calls" \
        "$(python3 -c "print(f'{$calls / $ok:.2f}' if $ok else '-')")" \
        "$(f by_call)" "$(f callers)" "$(f late_callers)" >>"$OUT/fsync.tsv"
    say "fsync $system: $counted for $ok messages"
}
if wants fsync; then
    for system in postfix tlsrelay; do fsync_run "$system"; done
fi

# --- W6: idle sessions, memory per session ----------------------------------
# A fresh instance per measurement (so nothing freed by an earlier one is
# reused): its memory bare, then with N sessions held after EHLO (and
# STARTTLS), counted with ss; (with - bare) / established.
printf 'system\tmode\tasked\testablished\tss_established\tquit_answered\tprocs_bare\tprocs_with\trss_bare\trss_with\tpss_bare\tpss_with\trss_per_session\tpss_per_session\topen_seconds\n' >"$OUT/idle.tsv"
idle_run() { # SYSTEM MODE N
    local system=$1 mode=$2 n=$3 flags=() target root port bare with gen result released ss_count
    [[ $mode == starttls ]] && flags+=(--starttls)
    if [[ $system == postfix ]]; then start_postfix idle plain 0 "$n"; else start_tlsrelay idle plain none "$n"; fi
    target=${TARGET[$system-idle]} root=${ROOT[$system-idle]} port=${target##*:}
    sleep 3 # let the fresh instance settle
    bare=$(procstat tree "$root")
    "$LOADGEN" --target "$target" --idle "$n" --sessions 50 --hold-seconds "$W6_TIMEOUT" \
        --max-seconds "$W6_TIMEOUT" "${flags[@]}" >"$WORK/idle-$system-$mode.out" 2>&1 &
    gen=$!
    PIDS+=("$gen")
    wait_for "$WORK/idle-$system-$mode.out" '^RESULT' "$W6_TIMEOUT" || say "W6 $system $mode: the generator gave no result in $W6_TIMEOUT s"
    sleep 2
    ss_count=$(ss -Htn state established "( sport = :$port )" | wc -l)
    with=$(procstat tree "$root")
    result=$(grep '^RESULT' "$WORK/idle-$system-$mode.out" || true)
    # End the hold; the generator says QUIT on every session and reports.
    kill -TERM "$gen" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$gen" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$gen"
    released=$(sed -n 's/^RELEASED .*quit_answered=\([0-9]*\).*/\1/p' "$WORK/idle-$system-$mode.out")
    if [[ $system == postfix ]]; then stop_postfix idle; else stop_pid "$root"; fi
    unset "TARGET[$system-idle]" "ROOT[$system-idle]"
    g() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; }
    local established
    established=$(g established "$result")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$mode" "$n" "${established:-0}" \
        "$ss_count" "${released:--}" "$(g procs "$bare")" "$(g procs "$with")" "$(g rss "$bare")" "$(g rss "$with")" \
        "$(g pss "$bare")" "$(g pss "$with")" \
        "$(python3 -c "print(($(g rss "$with") - $(g rss "$bare")) // $ss_count if $ss_count else '-')")" \
        "$(python3 -c "print(($(g pss "$with") - $(g pss "$bare")) // $ss_count if $ss_count else '-')")" \
        "$(g seconds "$result")" >>"$OUT/idle.tsv"
    say "W6 $system $mode: ${established:-0} of $n established ($ss_count by ss), bare: $bare; with: $with; ${released:-?} answered QUIT after the hold"
}
if wants W6; then
    for system in postfix tlsrelay; do
        n=$([[ $system == postfix ]] && echo "$W6_POSTFIX_SESSIONS" || echo "$W6_SESSIONS")
        for mode in $W6_MODES; do idle_run "$system" "$mode" "$n"; done
    done
fi

# --- steady state (compare_steady.sh) and large queue (compare_queue.sh) ----
source "$BENCHES/compare_steady.sh"
if wants steady; then
    for system in postfix tlsrelay; do steady_run "$system"; done
fi
source "$BENCHES/compare_queue.sh"
if wants queue; then
    start_sink q --refuse "$QUEUE_REFUSE"
    for n in $QUEUE_N; do
        for system in $QUEUE_SYSTEMS; do queue_run "$system" "$n"; done
    done
fi

# --- report -----------------------------------------------------------------
python3 "$BENCHES/report.py" "$OUT/results.tsv" "$OUT/fsync.tsv" "$OUT/idle.tsv" "$OUT/steady.tsv" \
    "$OUT/queue.tsv" >"$OUT/results.md"
# What really went over TLS, from the peers' own logs.
{
    echo
    echo "Postfix (tls) outbound TLS connections: $(grep -c 'TLS connection established to' "$WORK/postfix-tls/maillog" || true)," \
        "inbound: $(grep -c 'TLS connection established from' "$WORK/postfix-tls/maillog" || true);" \
        "tlsrelay (tls) deliveries over TLSv1.3: $(grep -c '"tls":"TLSv1.3' "$WORK/tlsrelay-tls/log" || true)"
} >>"$OUT/results.md"
say "raw: $OUT/results.tsv; table: $OUT/results.md"
cat "$OUT/results.md"
