#!/usr/bin/env python3
"""What a relay costs the machine, from /proc, for benches/compare.sh.

A relay is a set of processes: the ROOT pids given and all their
descendants at the moment of reading (tlsrelay: one process, its threads
included; Postfix: the master and every daemon it forked). Linux only.

  procstat.py tree ROOT...          procs=N rss=BYTES pss=BYTES cpu=SECONDS
  procstat.py pids ROOT...          the pids, one per line (for strace -p)
  procstat.py tasks ROOT...         the thread ids of those processes
  procstat.py sample [--interval S] [--pss-every K] [--max-seconds S] ROOT...
                                    sums the RSS of the set every S seconds
                                    (default 0.1), and its PSS every K-th
                                    time (default 10: reading PSS walks the
                                    page tables), until SIGTERM, SIGINT or
                                    the limit, then prints peak_rss=BYTES
                                    peak_pss=BYTES samples=N max_procs=N
  procstat.py fsyncs FILE ATTACHED...
                                    counts the sync calls in an `strace -f -o
                                    FILE` log: calls=N by_call=NAME:N,...
                                    callers=N late_callers=N (callers that
                                    were not among the ATTACHED pids, so
                                    were forked after strace attached)

cpu is utime+stime+cutime+cstime summed over the set: the CPU time of the
live processes and of every child they have reaped, so the CPU of a
Postfix smtpd that exited during a run is still counted (in the master's
cutime/cstime). The difference of two readings is the CPU of the run.
"""

import os
import signal
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
SYNC_CALLS = ("fsync", "fdatasync", "sync_file_range", "syncfs")


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rfind(")") + 2 :].split()


def tree(roots):
    """{pid: stat fields} of the roots and all their descendants."""
    parent, fields = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            rest = stat_fields(name)
            if rest:
                pid = int(name)
                parent[pid] = int(rest[1])
                fields[pid] = rest
    children = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [r for r in roots if r in fields]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found[pid] = fields[pid]
        todo.extend(children.get(pid, []))
    return found


def rss(fields):
    return int(fields[21]) * PAGE


def cpu(fields):
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


def pss(pid):
    """Proportional set size: shared pages divided among their users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cmd_tree(roots):
    procs = tree(roots)
    print(
        f"procs={len(procs)} rss={sum(rss(f) for f in procs.values())} "
        f"pss={sum(pss(p) for p in procs)} cpu={sum(cpu(f) for f in procs.values()):.2f}"
    )


def cmd_sample(args):
    interval, limit, pss_every = 0.1, 3600.0, 10
    while args and args[0].startswith("--"):
        if args[0] == "--interval":
            interval = float(args[1])
        elif args[0] == "--pss-every":
            pss_every = max(1, int(args[1]))
        elif args[0] == "--max-seconds":
            limit = float(args[1])
        else:
            sys.exit(f"procstat: unknown option {args[0]}")
        args = args[2:]
    roots = [int(a) for a in args]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    peak, peak_pss, samples, most, end = 0, 0, 0, 0, time.monotonic() + limit
    while not stop and time.monotonic() < end:
        procs = tree(roots)
        peak = max(peak, sum(rss(f) for f in procs.values()))
        if samples % pss_every == 0:
            peak_pss = max(peak_pss, sum(pss(p) for p in procs))
        most = max(most, len(procs))
        samples += 1
        time.sleep(interval)
    print(f"peak_rss={peak} peak_pss={peak_pss} samples={samples} max_procs={most}", flush=True)


def cmd_fsyncs(path, attached):
    by_call, callers = {}, set()
    with open(path, errors="replace") as f:
        for line in f:
            # "PID fsync(12 <unfinished ...>" or "PID fsync(12) = 0"; the
            # "<... fsync resumed>" half of a split call is not counted.
            pid, _, rest = line.partition(" ")
            name = rest.lstrip().split("(", 1)[0]
            if pid.isdigit() and name in SYNC_CALLS:
                by_call[name] = by_call.get(name, 0) + 1
                callers.add(int(pid))
    late = callers - attached
    calls = ",".join(f"{k}:{v}" for k, v in sorted(by_call.items())) or "-"
    print(
        f"calls={sum(by_call.values())} by_call={calls} callers={len(callers)} late_callers={len(late)}"
    )


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "tree":
        cmd_tree([int(a) for a in args])
    elif cmd == "pids":
        for pid in sorted(tree([int(a) for a in args])):
            print(pid)
    elif cmd == "tasks":
        for pid in sorted(tree([int(a) for a in args])):
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in sorted(tids, key=int):
                print(tid)
    elif cmd == "sample":
        cmd_sample(args)
    elif cmd == "fsyncs":
        cmd_fsyncs(args[0], {int(a) for a in args[1:]})
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
