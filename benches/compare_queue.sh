# Sourced by compare.sh (WORKLOADS="queue"): a large queue of deferred
# messages (issue 18). Uses compare.sh's helpers (start_sink, sink_stats,
# start_postfix, launch_postfix, stop_postfix, start_tlsrelay,
# launch_tlsrelay, procstat, say, ...) and only each relay's public
# surfaces: SMTP, its queue commands (tlsrelay queue ..., postqueue),
# tlsrelay's metrics and Postfix's log, and the total size of its queue
# folder. BENCHMARKS.md and benches/README.md say what each figure means.
#
#   QUEUE_N="50000"          queue sizes, each measured in turn
#   QUEUE_SYSTEMS="postfix tlsrelay"
#   QUEUE_SIZE=2048          bytes per message
#   QUEUE_SESSIONS=$SESSIONS generator sessions filling the queue
#   QUEUE_REFUSE=rcpt        how the next hop refuses while filling:
#                            rcpt (450 to RCPT) or connect (421 greeting)
#   QUEUE_TIMEOUT=3600       s, the bound of every wait (fill, deferral,
#                            loading, delivery, stopping)
#   QUEUE_SETTLE=3           s between a relay's start and its RSS reading
#   QUEUE_DROP_CACHES=0      1: drop the page cache before each start
#
# Per system and N, on a fresh instance whose next hop (its own sink)
# refuses for now, and whose retry interval is 12 h (so nothing is
# retried unless asked):
#   1. started once and stopped: the spool's size empty;
#   2. started empty: time to the banner, RSS after QUEUE_SETTLE s;
#   3. filled with N messages by the generator; wait until the relay has
#      deferred every one (tlsrelay_recipients_total{result="deferred"},
#      Postfix's status=deferred log lines); stopped; the spool's size
#      loaded;
#   4. started with the queue: time to the banner, (tlsrelay) time until
#      tlsrelay_queue_messages shows N, RSS QUEUE_SETTLE s later; then
#      `queue list --deferred` / `postqueue -p` timed, then `queue retry
#      --all` / `postqueue -f` timed, and the time until every message
#      has been tried (and deferred) again; stopped;
#   5. the sink accepts; started with the queue: as soon as it answers
#      SMTP, `queue retry --all` / `postqueue -f`; time from the start to
#      the sink's first 250, then until the sink has all N; the spool's
#      size QUEUE_SETTLE s after the last one, and after stopping.

QUEUE_N=${QUEUE_N:-50000}
QUEUE_SYSTEMS=${QUEUE_SYSTEMS:-"postfix tlsrelay"}
QUEUE_SIZE=${QUEUE_SIZE:-2048}
QUEUE_SESSIONS=${QUEUE_SESSIONS:-$SESSIONS}
QUEUE_REFUSE=${QUEUE_REFUSE:-rcpt}
QUEUE_TIMEOUT=${QUEUE_TIMEOUT:-3600}
QUEUE_SETTLE=${QUEUE_SETTLE:-3}
QUEUE_DROP_CACHES=${QUEUE_DROP_CACHES:-0}

QUEUE_COLUMNS=(system n size refuse fill_ok fill_errors fill_s fill_rate deferred_s
    banner_empty_s banner_s banner2_s loaded_s rss_empty rss_loaded pss_empty pss_loaded rss_per_msg pss_per_msg
    list_s list_count retry_s retry_said rerun_s first_delivery_s retry2_s retry2_said drain_s drain_rate
    du_empty du_loaded disk_per_byte du_delivered du_delivered_stopped)
(IFS=$'\t'; echo "${QUEUE_COLUMNS[*]}") >"$OUT/queue.tsv"

# banner_probe ADDR SECONDS: connects every 5 ms until a 220 greeting
# arrives; prints the wall time it arrived ($EPOCHREALTIME style), or "-".
banner_probe() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.settimeout(max(0.1, deadline - time.time()))
            line = b""
            while b"\n" not in line:
                data = s.recv(512)
                if not data:
                    break
                line += data
            if line.startswith(b"220"):
                at = time.time()
                s.sendall(b"QUIT\r\n")
                print(f"{at:.6f}")
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.005)
print("-")
EOF
}

# q_metric NAME{LABELS}: one value from the queue instance's metrics.
q_metric() {
    relay_metric "$Q_METRICS" "$1"
}
# q_mark SYSTEM: where deferrals are counted from: Postfix, the size of
# its log; tlsrelay, its deferred-recipient counter (since its start).
q_mark() {
    if [[ $1 == postfix ]]; then
        stat -c %s "$WORK/postfix-queue/maillog"
    else
        local v
        v=$(q_metric 'tlsrelay_recipients_total{result="deferred"}')
        printf '%.0f\n' "${v:-0}"
    fi
}
# q_wait_deferrals SYSTEM MARK COUNT START: until COUNT deferrals past
# MARK; prints the seconds from START ($EPOCHREALTIME) until then, or "-"
# at QUEUE_TIMEOUT. Postfix's log is read from MARK on, only what is new
# (a re-read of a log of a million lines would take CPU from Postfix).
q_wait_deferrals() {
    if [[ $1 == postfix ]]; then
        python3 - "$WORK/postfix-queue/maillog" "$2" "$3" "$4" "$QUEUE_TIMEOUT" <<'EOF'
import sys, time
path, offset, want, start, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
got, rest = 0, b""
with open(path, "rb") as log:
    log.seek(offset)
    while got < want and time.time() - start < limit:
        data = rest + log.read()
        cut = data.rfind(b"\n") + 1
        got, rest = got + data[:cut].count(b"status=deferred"), data[cut:]
        if got < want:
            time.sleep(0.1)
if got < want:
    sys.stderr.write(f"queue postfix: {got} of {want} deferred\n")
print(f"{time.time() - start:.3f}" if got >= want else "-")
EOF
        return
    fi
    local deadline=$((SECONDS + QUEUE_TIMEOUT)) v
    while v=$(q_mark tlsrelay); ((v - $2 < $3)); do
        ((SECONDS < deadline)) || { say "queue tlsrelay: $((v - $2)) of $3 deferred"; echo -; return; }
        sleep 0.1
    done
    elapsed "$4"
}
elapsed() { python3 -c "import sys; print(f'{$EPOCHREALTIME - $1:.3f}')"; }
q_du() { du -s --block-size=1 "$Q_SPOOL" | cut -f1; }
q_drop_caches() { [[ $QUEUE_DROP_CACHES != 1 ]] || { sync; echo 3 >/proc/sys/vm/drop_caches; }; }

# q_start SYSTEM: starts the queue instance again, with a banner probe;
# Q_BANNER: seconds from the start to the greeting.
q_start() {
    q_drop_caches
    banner_probe "$Q_TARGET" "$QUEUE_TIMEOUT" >"$WORK/banner.out" &
    local probe=$!
    PIDS+=("$probe")
    if [[ $1 == postfix ]]; then launch_postfix queue; else launch_tlsrelay tlsrelay queue; fi
    wait "$probe" || true
    forget_pid "$probe"
    Q_BANNER=$(python3 -c "a = '$(cat "$WORK/banner.out")'; print(f'{float(a) - $LAUNCHED_AT:.3f}' if a != '-' else '-')")
}
# q_stop SYSTEM: stops it, waiting QUEUE_TIMEOUT at most (then KILL).
q_stop() {
    if [[ $1 == postfix ]]; then
        stop_postfix queue
        return
    fi
    local pid=${ROOT[tlsrelay-queue]} deadline=$((SECONDS + QUEUE_TIMEOUT))
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || { say "queue tlsrelay: not stopped in $QUEUE_TIMEOUT s, KILL"; kill -KILL "$pid"; }
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}
# q_retry SYSTEM: asks for every message to be tried now; prints the
# seconds the command took and what it said (tlsrelay: messages made due).
# Only the command is timed, the same way for both (its output to a
# file, read afterwards).
q_retry() {
    local start took said=- out="$WORK/retry.out"
    start=$EPOCHREALTIME
    if [[ $1 == postfix ]]; then
        timeout "$QUEUE_TIMEOUT" /usr/sbin/postqueue -c "$WORK/postfix-queue/etc" -f >"$out" || say "postqueue -f failed"
        took=$(elapsed "$start")
    else
        timeout "$QUEUE_TIMEOUT" "$TLSRELAY" queue -c "$Q_CONFIG" retry --all >"$out" || true
        took=$(elapsed "$start")
        said=$(sed -n 's/^\([0-9]*\) message.*/\1/p' "$out")
    fi
    echo "$took ${said:--}"
}
# q_list SYSTEM: lists the deferred messages into a file; prints the
# seconds it took and the count its last line gives.
q_list() {
    local start=$EPOCHREALTIME took
    if [[ $1 == postfix ]]; then
        timeout "$QUEUE_TIMEOUT" /usr/sbin/postqueue -c "$WORK/postfix-queue/etc" -p >"$WORK/list.out" || true
        took=$(elapsed "$start")
        echo "$took $(tail -n1 "$WORK/list.out" | sed -n 's/^-- .* in \([0-9]*\) Requests\?\.$/\1/p')"
    else
        timeout "$QUEUE_TIMEOUT" "$TLSRELAY" queue -c "$Q_CONFIG" list --deferred >"$WORK/list.out" || true
        took=$(elapsed "$start")
        echo "$took $(tail -n1 "$WORK/list.out" | sed -n 's/^-- \([0-9]*\) message(s).*/\1/p')"
    fi
}
# q_sink MODE: the queue sink accepts or refuses from now on.
q_sink() {
    local out=$WORK/sink-q.out lines
    lines=$(wc -l <"$out")
    echo "$1" >&"${SINK_FD[q]}"
    for _ in $(seq 1 250); do
        (($(wc -l <"$out") > lines)) && return
        sleep 0.02
    done
    die "the queue sink did not answer '$1'"
}
# q_first: the queue sink's first 250 since it was told to accept
# (seconds on the sink's clock), "none" before any.
q_first() {
    sink_stats q >/dev/null
    tail -n1 "$WORK/sink-q.out" | sed -n 's/.* first=\([^ ]*\) .*/\1/p'
}

# queue_run SYSTEM N: the steps at the top of this file; one line of queue.tsv.
queue_run() {
    local system=$1 n=$2 result ok c0 s0 w0 first='' stats
    local -A r=([system]=$system [n]=$n [size]=$QUEUE_SIZE [refuse]=$QUEUE_REFUSE)
    q_sink refuse
    if [[ $system == postfix ]]; then
        EXTRA_MAIN_CF=$'minimal_backoff_time = 12h\nmaximal_backoff_time = 12h\nqueue_run_delay = 12h' \
            start_postfix queue q 0
        Q_SPOOL=$WORK/postfix-queue/spool
    else
        Q_METRICS=127.0.0.1:$(free_port)
        LISTEN=127.0.0.1:$(free_port) METRICS_LISTEN=$Q_METRICS \
            EXTRA_TOML=$(printf '%s\n' '[queue]' 'retry_intervals = ["12h"]' 'delay_warning_after = "0s"') \
            start_tlsrelay queue q none
        Q_SPOOL=$WORK/tlsrelay-queue/spool Q_CONFIG=$WORK/tlsrelay-queue/tlsrelay.toml
    fi
    Q_TARGET=${TARGET[$system-queue]}
    q_stop "$system"
    r[du_empty]=$(q_du)
    # 2. empty start
    q_start "$system"
    r[banner_empty_s]=$Q_BANNER
    sleep "$QUEUE_SETTLE"
    stats=$(procstat tree "${ROOT[$system-queue]}")
    r[rss_empty]=$(sed -n 's/.* rss=\([0-9]*\).*/\1/p' <<<"$stats")
    r[pss_empty]=$(sed -n 's/.* pss=\([0-9]*\).*/\1/p' <<<"$stats")
    # 3. fill
    local mark
    mark=$(q_mark "$system")
    say "queue $system: filling with $n messages of $QUEUE_SIZE bytes (next hop refuses at $QUEUE_REFUSE)"
    result=$(timeout $((QUEUE_TIMEOUT + 60)) "$LOADGEN" --target "$Q_TARGET" --sessions "$QUEUE_SESSIONS" \
        --messages "$n" --size "$QUEUE_SIZE" --rcpts 1 --max-seconds "$QUEUE_TIMEOUT" --reuse | grep '^RESULT' || true)
    f() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$result"; }
    ok=$(f ok)
    ok=${ok:-0}
    r[fill_ok]=$ok r[fill_errors]=$(f errors) r[fill_s]=$(f seconds) r[fill_rate]=$(f rate)
    r[deferred_s]=$(q_wait_deferrals "$system" "$mark" "$ok" "$EPOCHREALTIME")
    q_stop "$system"
    r[du_loaded]=$(q_du)
    r[disk_per_byte]=$(python3 -c "print(f'{(${r[du_loaded]} - ${r[du_empty]}) / ($ok * $QUEUE_SIZE):.2f}' if $ok else '-')")
    say "queue $system: $ok accepted in ${r[fill_s]} s, all deferred ${r[deferred_s]} s later; spool $((r[du_loaded] / 1048576)) MiB"
    # 4. loaded start: banner, memory, list, retry
    q_start "$system"
    r[banner_s]=$Q_BANNER
    if [[ $system == tlsrelay ]]; then
        local deadline=$((SECONDS + QUEUE_TIMEOUT)) v
        while v=$(q_metric tlsrelay_queue_messages); ((${v:-0} < ok)); do
            ((SECONDS < deadline)) || { say "queue tlsrelay: ${v:-0} of $ok loaded"; break; }
            sleep 0.05
        done
        r[loaded_s]=$(elapsed "$LAUNCHED_AT")
    fi
    sleep "$QUEUE_SETTLE"
    stats=$(procstat tree "${ROOT[$system-queue]}")
    r[rss_loaded]=$(sed -n 's/.* rss=\([0-9]*\).*/\1/p' <<<"$stats")
    r[pss_loaded]=$(sed -n 's/.* pss=\([0-9]*\).*/\1/p' <<<"$stats")
    r[rss_per_msg]=$(python3 -c "print(round((${r[rss_loaded]} - ${r[rss_empty]}) / $ok) if $ok else '-')")
    r[pss_per_msg]=$(python3 -c "print(round((${r[pss_loaded]} - ${r[pss_empty]}) / $ok) if $ok else '-')")
    read -r r[list_s] r[list_count] <<<"$(q_list "$system")"
    mark=$(q_mark "$system")
    local asked=$EPOCHREALTIME
    read -r r[retry_s] r[retry_said] <<<"$(q_retry "$system")"
    r[rerun_s]=$(q_wait_deferrals "$system" "$mark" "$ok" "$asked")
    q_stop "$system"
    say "queue $system: banner ${r[banner_s]} s (empty ${r[banner_empty_s]} s), RSS ${r[rss_empty]} -> ${r[rss_loaded]}," \
        "list ${r[list_s]} s (${r[list_count]:-?} listed), retry ${r[retry_s]} s, all tried again ${r[rerun_s]} s after"
    # 5. the next hop accepts: first delivery, delivery of all, reclamation
    q_sink accept
    read -r c0 _ s0 <<<"$(sink_stats q)"
    w0=$EPOCHREALTIME
    q_start "$system"
    r[banner2_s]=$Q_BANNER
    read -r r[retry2_s] r[retry2_said] <<<"$(q_retry "$system")"
    local deadline=$((SECONDS + QUEUE_TIMEOUT)) c1=0 last=0
    while first=$(q_first); [[ $first == none ]]; do
        ((SECONDS < deadline)) || break
        sleep 0.05
    done
    # The sink's clock read at s0 just before w0; the relay started at LAUNCHED_AT.
    [[ $first == none ]] || r[first_delivery_s]=$(python3 -c "print(f'{$first - $s0 - ($LAUNCHED_AT - $w0):.3f}')")
    while read -r c1 last _ <<<"$(sink_stats q)"; ((c1 - c0 < ok)); do
        ((SECONDS < deadline)) || { say "queue $system: sink got $((c1 - c0)) of $ok"; break; }
        sleep 0.5
    done
    if ((c1 - c0 >= ok)) && [[ $first != none ]]; then
        r[drain_s]=$(python3 -c "print(f'{$last - $first:.3f}')")
        r[drain_rate]=$(python3 -c "print(f'{$ok / max($last - $first, 1e-6):.0f}')")
    fi
    sleep "$QUEUE_SETTLE"
    r[du_delivered]=$(q_du)
    q_stop "$system"
    r[du_delivered_stopped]=$(q_du)
    local col line=()
    for col in "${QUEUE_COLUMNS[@]}"; do line+=("${r[$col]:--}"); done
    (IFS=$'\t'; echo "${line[*]}") >>"$OUT/queue.tsv"
    say "queue $system: first delivery ${r[first_delivery_s]:--} s after the start, all $ok in ${r[drain_s]:--} s;" \
        "spool empty $((r[du_empty] / 1024)) KiB, loaded $((r[du_loaded] / 1024)) KiB, delivered $((r[du_delivered] / 1024)) KiB"
}
