#!/usr/bin/env python3
"""The tables of benches/compare.sh (target/compare/results.md) from its
raw files: report.py RESULTS.tsv FSYNC.tsv IDLE.tsv [STEADY.tsv QUEUE.tsv].
Medians over the repetitions; ratios are of medians. BENCHMARKS.md
explains each figure; the steady-state and queue tables are in
report_queue.py."""

import csv, statistics, sys
sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import report_queue
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
fsyncs = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))
idle = list(csv.DictReader(open(sys.argv[3]), delimiter="\t"))
def num(v):
    return None if v in ("-", "", None) else float(v)
def med(rs, key):
    vals = [num(r.get(key)) for r in rs if num(r.get(key)) is not None]
    return statistics.median(vals) if vals else None
def fmt(v, d=0):
    return "-" if v is None else f"{v:,.{d}f}"
def mib(v):
    return "-" if v is None else f"{v / 2**20:,.1f}"
def size(b):
    b = int(b)
    return f"{b // 2**20} MiB" if b >= 2**20 else f"{b // 1024} KiB" if b >= 1024 else f"{b} B"
groups = {}
for r in rows:
    if r["workload"] != "fsync":  # slowed down by strace: its own table
        groups.setdefault((r["workload"], r["system"]), []).append(r)
if groups:
    print("| workload | system | runs × messages | size, rcpts, sessions | accepted msg/s | delivered msg/s (at sink) "
          "| p50 ms | p99 ms | errors | CPU s / 1,000 msgs | syncs / msg |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (w, s), rs in groups.items():
        errors = sum(int(r["errors"] or 0) for r in rs)
        r0 = rs[0]
        print(f"| {w} | {s} | {len(rs)} × {r0['messages']} | {size(r0['size'])}, {r0['rcpts']}, {r0['sessions']} "
              f"| {fmt(med(rs,'gen_rate'))} | {fmt(med(rs,'sink_rate'))} "
              f"| {fmt(med(rs,'p50_ms'),2)} | {fmt(med(rs,'p99_ms'),2)} | {errors} | {fmt(med(rs,'cpu_s_per_1k'),2)} "
              f"| {fmt(med(rs,'syncs_per_msg'),3)} |")
    print()
    print("CPU: utime+stime+cutime+cstime of the system's process tree (tlsrelay: its process; Postfix: the master, "
          "its live daemons and, through cutime/cstime, those that exited), from just before the generator starts "
          "to the sink's last message; for `sink` rows, the sink's own. Syncs / msg: tlsrelay's "
          "`tlsrelay_spool_syncs_total` over the same span, per accepted message, without strace (`-`: "
          "Postfix, the sink, or a build without that metric).")
    print()
def ratio_cells(t, other):
    """tlsrelay's runs `t` over `other`'s: accepted, delivered, p99, CPU per message."""
    ratio = lambda k: (med(t, k) / med(other, k)) if med(t, k) is not None and med(other, k) else None
    return (f"{fmt(ratio('gen_rate'),2)} | {fmt(ratio('sink_rate'),2)} | {fmt(ratio('p99_ms'),2)} "
            f"| {fmt(ratio('cpu_s_per_1k'),2)}")
ratios = []
null = {"W1": "null", "W2": "null", "W3": "null-tls"}
for w in ("W1", "W1far", "W2", "W3", "W4a", "W4b", "W5"):
    t, p = groups.get((w, "tlsrelay")), groups.get((w, "postfix"))
    if not t or not p:
        continue
    n = groups.get((null.get(w), "sink"))
    of_null = med(t, "sink_rate") / med(n, "sink_rate") if n and med(n, "sink_rate") else None
    ratios.append(f"| {w} | {ratio_cells(t, p)} | {fmt(of_null,2)} |")
if ratios:
    print("| workload | tlsrelay/Postfix accepted | tlsrelay/Postfix delivered | p99 tlsrelay/Postfix "
          "| CPU per message tlsrelay/Postfix | tlsrelay delivered / null relay |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(ratios))
    print()
# Before/after in the same run (BASELINE=…): the current build over the baseline.
before_after = []
for w in ("W1", "W1far", "W2", "W3", "W4a", "W4b", "W5"):
    t, b = groups.get((w, "tlsrelay")), groups.get((w, "baseline"))
    if not t or not b:
        continue
    before_after.append(f"| {w} | {ratio_cells(t, b)} |")
if before_after:
    print("| workload | accepted tlsrelay/baseline | delivered tlsrelay/baseline | p99 tlsrelay/baseline "
          "| CPU per message tlsrelay/baseline |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(before_after))
    print()
peaks = [(w, s, rs) for (w, s), rs in groups.items() if w in ("W4a", "W4b")]
if peaks:
    print("| workload | system | peak RSS MiB (VmHWM) | peak RSS MiB (sampled sum, 100 ms) | peak PSS MiB (sampled sum, 1 s) |")
    print("| --- | --- | --- | --- | --- |")
    for w, s, rs in peaks:
        print(f"| {w} | {s} | {mib(med(rs,'peak_rss'))} | {mib(med(rs,'peak_rss_sampled'))} "
              f"| {mib(med(rs,'peak_pss_sampled'))} |")
    print()
    print("VmHWM: tlsrelay's one process, reset before each run (clear_refs 5). Sampled: the sum over every "
          "process of the relay, the largest sum seen; Postfix has no single peak to read. The RSS sum counts "
          "a shared page (libraries, the shared text of 50 smtpd) once per process; PSS divides it among them. "
          "Medians over the runs.")
    print()
if fsyncs:
    print("| system (W1, under strace) | messages | sync calls | per message | by call | processes calling | of them forked after attach |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in fsyncs:
        print(f"| {r['system']} | {r['messages']} | {r['calls']} | {r['per_message']} | {r['by_call']} "
              f"| {r['callers']} | {r['late_callers']} |")
    print()
if idle:
    print("| system | mode | sessions asked | established (generator) | established (ss) | answered QUIT after the hold "
          "| processes bare → with | RSS MiB bare → with | RSS per session, bytes | PSS per session, bytes | s to open |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in idle:
        print(f"| {r['system']} | {r['mode']} | {r['asked']} | {r['established']} | {r['ss_established']} "
              f"| {r['quit_answered']} | {r['procs_bare']} → {r['procs_with']} "
              f"| {mib(num(r['rss_bare']))} → {mib(num(r['rss_with']))} | {fmt(num(r['rss_per_session']))} "
              f"| {fmt(num(r['pss_per_session']))} | {r['open_seconds']} |")
    print()
    print("Per session: (with − bare) / sessions counted by ss, summed over every process of a fresh instance; "
          "RSS counts a shared page in every process that maps it, PSS divides it among them.")
for path, table in zip(sys.argv[4:6], (report_queue.steady, report_queue.queue)):
    table(list(csv.DictReader(open(path), delimiter="\t")))
