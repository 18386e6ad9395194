#!/usr/bin/env bash
# Runs every design at 1, 10 and 50 writers: rate and latency without
# strace, then the sync count with strace -c (syncs per message).
set -eu
cd "$(dirname "$0")"
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-target}/release/spool-spike
N=${N:-4000}
SIZE=${SIZE:-2048}
DIR=${DIR:-/var/tmp/spool-spike}
printf 'design\twriters\tmessages\tper_s\tp50_ms\tp99_ms\tsyncs_per_msg\n'
for design in files segment redb fjall; do
  for w in 1 10 50; do
    n=$N; [ "$w" = 1 ] && n=$((N / 4))
    line=$("$BIN" "$design" "$w" "$n" "$SIZE" "$DIR")
    syncs=$(strace -f -c -e trace=fsync,fdatasync,sync_file_range,msync -o "$DIR.strace" \
      "$BIN" "$design" "$w" "$n" "$SIZE" "$DIR" >/dev/null; \
      awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync)$/ {s += $4} END {print s+0}' "$DIR.strace")
    printf '%s\t%.2f\n' "$line" "$(echo "$syncs / $n" | bc -l)"
  done
done
rm -rf "$DIR" "$DIR.strace"
