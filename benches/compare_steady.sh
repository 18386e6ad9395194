# Sourced by compare.sh (WORKLOADS="steady"): W1 for a fixed time instead
# of a fixed count, to see whether delivery keeps up with acceptance
# (issue 18: delivered >= 0.95 x accepted over 60 s). Uses compare.sh's
# plain instances, its plain sink and its helpers (sink_stats, say, ...).
#
#   STEADY_SECONDS=60   how long the generator claims new messages
#   STEADY_SESSIONS=20  its sessions (reused connections, as W1)
#   STEADY_DRAIN=5      seconds after the window before the second count
#
# Each relay in turn, from an empty queue: the generator runs W1 for
# STEADY_SECONDS; "accepted" is what it got 250 for, "delivered in the
# window" what the sink counted between the generator's start and its
# end, "after the drain" the same STEADY_DRAIN seconds later, when the
# queue left is also read (tlsrelay queue list / postqueue -p). Then the
# script waits (RUN_TIMEOUT at most) until the sink has every accepted
# message, so the next relay starts from an empty queue, and records when
# the last one arrived, in seconds after the window (0: within it).

STEADY_SECONDS=${STEADY_SECONDS:-60}
STEADY_SESSIONS=${STEADY_SESSIONS:-20}
STEADY_DRAIN=${STEADY_DRAIN:-5}

# queue_size SYSTEM NAME: messages in an instance's queue, by the relay's
# own tool (tlsrelay queue list; Postfix postqueue -p), "-" if unreadable.
queue_size() {
    local system=$1 name=$2 out n
    if [[ $system == postfix ]]; then
        out=$(timeout "$RUN_TIMEOUT" /usr/sbin/postqueue -c "$WORK/postfix-$name/etc" -p | tail -n1 || true)
        [[ $out == *"queue is empty"* ]] && { echo 0; return; }
        n=$(sed -n 's/^-- .* in \([0-9]*\) Requests\?\.$/\1/p' <<<"$out")
    else
        out=$(timeout "$RUN_TIMEOUT" "$TLSRELAY" queue -c "$WORK/$system-$name/tlsrelay.toml" list | tail -n1 || true)
        [[ $out == *"queue is empty"* ]] && { echo 0; return; }
        n=$(sed -n 's/^-- \([0-9]*\) message(s).*/\1/p' <<<"$out")
    fi
    echo "${n:--}"
}

printf 'system\tseconds\tsessions\tsize\taccepted\terrors\tgen_rate\tdelivered_window\tdelivered_drain\tdrain_s\tqueue_left\tall_delivered_s\n' \
    >"$OUT/steady.tsv"
steady_run() { # SYSTEM
    local system=$1 c0 c1 c2 c3 result ok left ended all_s=-
    read -r c0 _ _ <<<"$(sink_stats plain)"
    result=$(timeout $((STEADY_SECONDS + RUN_TIMEOUT)) "$LOADGEN" --target "${TARGET[$system-plain]}" \
        --sessions "$STEADY_SESSIONS" --messages 1000000000 --size "$SIZE" --rcpts "$RCPTS" \
        --max-seconds "$STEADY_SECONDS" --reuse "${FLAGS[@]}" | grep '^RESULT' || true)
    read -r c1 _ ended <<<"$(sink_stats plain)"
    [[ -n $result ]] || { say "steady $system: the generator gave no result"; return; }
    ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' <<<"$result")
    sleep "$STEADY_DRAIN"
    read -r c2 _ _ <<<"$(sink_stats plain)"
    left=$(queue_size "$system" plain)
    local deadline=$((SECONDS + RUN_TIMEOUT)) last
    while read -r c3 last _ <<<"$(sink_stats plain)"; ((c3 - c0 < ok)); do
        ((SECONDS < deadline)) || { say "steady $system: sink got $((c3 - c0)) of $ok"; break; }
        sleep 0.2
    done
    # The sink's clock: its last 250 against the moment the window ended.
    ((c3 - c0 < ok)) || all_s=$(python3 -c "print(f'{max($last - $ended, 0):.1f}')")
    f() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$result"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$(f seconds)" "$STEADY_SESSIONS" "$SIZE" \
        "$ok" "$(f errors)" "$(f rate)" "$((c1 - c0))" "$((c2 - c0))" "$STEADY_DRAIN" "$left" "$all_s" >>"$OUT/steady.tsv"
    say "steady $system: accepted $ok in $(f seconds) s ($(f rate)/s), delivered $((c1 - c0)) in the window," \
        "$((c2 - c0)) ${STEADY_DRAIN} s later, queue left $left; all delivered ${all_s} s after the window"
}
