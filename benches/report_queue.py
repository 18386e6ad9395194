"""The steady-state and large-queue tables of benches/compare.sh (from
steady.tsv and queue.tsv), printed by report.py in the same style as its
other tables. benches/README.md says what each column measures."""


def num(v):
    return None if v in ("-", "", None) else float(v)


def fmt(v, d=0):
    v = num(v) if isinstance(v, str) or v is None else v
    return "-" if v is None else f"{v:,.{d}f}"


def mib(v):
    v = num(v)
    return "-" if v is None else f"{v / 2**20:,.1f}"


def ratio(a, b, d=2):
    a, b = num(a), num(b)
    return "-" if a is None or not b else f"{a / b:,.{d}f}"


def steady(rows):
    """W1 for a fixed time: delivered / accepted, and the queue left."""
    if not rows:
        return
    print("| steady state (W1) | seconds | sessions | accepted | accepted msg/s | delivered in the window "
          "| delivered / accepted | delivered after the drain | / accepted | queue left | all delivered, s after the window |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['system']} | {fmt(r['seconds'], 1)} | {r['sessions']} | {fmt(r['accepted'])} | {fmt(r['gen_rate'])} "
              f"| {fmt(r['delivered_window'])} | {ratio(r['delivered_window'], r['accepted'])} "
              f"| {fmt(r['delivered_drain'])} | {ratio(r['delivered_drain'], r['accepted'])} | {r['queue_left']} "
              f"| {r['all_delivered_s']} |")
    print()
    print("Window: from the generator's first connection to its last reply; the drain: "
          f"{rows[0]['drain_s']} s more. Queue left: the relay's own count (tlsrelay queue list, postqueue -p) "
          "after the drain.")
    print()


def queue(rows):
    """N deferred messages: start, memory, admin commands, disk."""
    if not rows:
        return
    print("| large queue | N | filled msg/s | answers SMTP, s (empty → loaded, 2nd) | queue known, s "
          "| first delivery, s | delivered msg/s | RSS MiB empty → loaded | bytes per message RSS (PSS) "
          "| list --deferred, s (listed) | retry --all, s | all tried again, s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['system']} | {fmt(r['fill_ok'])} | {fmt(r['fill_rate'])} "
              f"| {r['banner_empty_s']} → {r['banner_s']}, {r['banner2_s']} | {r['loaded_s']} "
              f"| {r['first_delivery_s']} | {fmt(r['drain_rate'])} | {mib(r['rss_empty'])} → {mib(r['rss_loaded'])} "
              f"| {fmt(r['rss_per_msg'])} ({fmt(r['pss_per_msg'])}) | {r['list_s']} ({fmt(r['list_count'])}) "
              f"| {r['retry_s']} | {r['rerun_s']} |")
    print()
    print("| large queue, disk | N | message bytes MiB | queue folder MiB: empty → loaded → delivered (stopped) "
          "| disk / message bytes | kept after delivery, of the loaded growth |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        n, size = num(r["fill_ok"]) or 0, num(r["size"]) or 0
        empty, loaded, after = num(r["du_empty"]), num(r["du_loaded"]), num(r["du_delivered_stopped"])
        kept = ("-" if None in (empty, loaded, after) or loaded == empty
                else f"{(after - empty) / (loaded - empty):.1%}")
        print(f"| {r['system']} | {fmt(r['fill_ok'])} | {n * size / 2**20:,.1f} "
              f"| {mib(r['du_empty'])} → {mib(r['du_loaded'])} → {mib(r['du_delivered'])} ({mib(r['du_delivered_stopped'])}) "
              f"| {r['disk_per_byte']} | {kept} |")
    print()
    print(f"Queue of 2 KiB messages filled through each relay toward a next hop refusing at {rows[0]['refuse']}. "
          "Answers SMTP: start to the first 220 on a new connection (empty queue → loaded; 2nd: the start of the "
          "delivery run). Queue known: start until tlsrelay_queue_messages shows N. First delivery: start to the "
          "sink's first 250, the next hop accepting and `queue retry --all` / `postqueue -f` sent as soon as the "
          "relay answered SMTP. RSS per message: (loaded − empty) / N, every process of the relay, "
          "settled after start. retry: the command's wall time (both only make the queue due and return); "
          "all tried again: until every message has been attempted (and deferred) again. Disk: `du` of the "
          "queue folder less its empty size, over N × message size.")
    print()
