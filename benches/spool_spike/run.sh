#!/usr/bin/env bash
# Runs every design at 1, 10 and 50 writers: rate and latency without
# strace, then the sync count with strace -c (syncs per message); then
# the start-up of each store holding STARTS (default 250000) records.
set -eu
cd "$(dirname "$0")"
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/spool-spike
N=${N:-4000}
SIZE=${SIZE:-2048}
DIR=${DIR:-/var/tmp/spool-spike}
printf 'design\twriters\tmessages\tper_s\tp50_ms\tp99_ms\tsyncs_per_msg\n'
for design in ${RATES-files segment redb fjall}; do
  for w in 1 10 50; do
    n=$N; [ "$w" = 1 ] && n=$((N / 4))
    line=$("$BIN" "$design" "$w" "$n" "$SIZE" "$DIR")
    syncs=$(strace -f -c -e trace=fsync,fdatasync,sync_file_range,msync -o "$DIR.strace" \
      "$BIN" "$design" "$w" "$n" "$SIZE" "$DIR" >/dev/null; \
      awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync)$/ {s += $4} END {print s+0}' "$DIR.strace")
    printf '%s\t%.2f\n' "$line" "$(echo "$syncs / $n" | bc -l)"
  done
done
# Start-up: STARTS records of SIZE bytes in each store, the page cache
# dropped, then the time to open it and list every id (as a relay's start).
printf '\ndesign\tmessages\tfill_s\tstart_ms\tcache\tdisk_pct_of_payload\n'
for n in ${STARTS:-250000}; do
  for design in files segment redb fjall; do
    # The last store's removal (a million files) is not this one's fill.
    rm -rf "$DIR"; sync
    "$BIN" "$design" start "$n" "$SIZE" "$DIR"
  done
done
rm -rf "$DIR" "$DIR.strace"
