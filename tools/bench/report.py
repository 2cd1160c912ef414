# The report: the table of figures (ours, microdot, the ratio), the targets next to what was
# measured, and a description of the machine. Everything here reads the results dict that
# cli.run() builds (also written as JSON).
import os
import platform
import subprocess
import time

import runtime

from .processes import ROOT


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 2)


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        v = ("%.0f" if v >= 1000 else "%.1f" if v >= 10 else "%.2f") % v
    return "%s%s" % (v, unit)


def _dig(d, ks):
    for k in ks:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _cap(c):
    if not c:
        return "n/a"
    if not c.get("booted"):
        return "0 (no boot)"
    return str(c["clients"])


# Rows of the heap after boot and per client: o and m are ours and microdot's figures.
def heap_rows(rows, rt, prefix, o, m):
    for label, key in (
        ("heap after boot", "boot_heap"),
        ("heap, first client", "first_client_heap"),
        ("heap per extra client (median)", "per_client_heap"),
    ):
        a, b = o.get(key), m.get(key)
        rows.append((rt, prefix + label, fmt(a, " B"), fmt(b, " B"), fmt(ratio(a, b))))


# Rows of the clients served at each heap size and of the smallest heaps, from the figures of
# one interpreter (phases.interpreter_figures).
def capacity_rows(rows, rt, prefix, r):
    for hs, cap in r.get("capacity", {}).items():
        a, b = _dig(cap, ("ours", "clients")), _dig(cap, ("microdot", "clients"))
        label = prefix + "clients served at heapsize=%s" % hs
        rows.append((rt, label, _cap(cap.get("ours")), _cap(cap.get("microdot")), fmt(ratio(a, b))))
    for key, label in (("heap_boot", "smallest heap that boots"), ("heap_search", "smallest heap serving")):
        h = r.get(key)
        if h:
            if key == "heap_search":
                label += " %d clients + pages" % h["clients"]
            a, b = h.get("ours"), h.get("microdot")
            rows.append((rt, prefix + label, fmt(a, "K"), fmt(b, "K"), fmt(ratio(a, b))))


def a_heapsize(results):
    return _dig(results, ("options", "heapsize"))


def table(results):
    rows = []
    for rt, r in results["runs"].items():
        o, m = r.get("ours", {}), r.get("microdot", {})

        def row(label, f, unit="", o=o, m=m, rt=rt):
            a, b = f(o), f(m)
            rows.append((rt, label, fmt(a, unit), fmt(b, unit), fmt(ratio(a, b))))

        g = lambda *ks: lambda d: _dig(d, ks)  # noqa: E731
        n = o.get("latency", {}).get("clients", "N")
        for p in ("p50", "p90", "p99", "max"):
            row("latency %s, %s clients" % (p, n), g("latency", p + "_ms"), " ms")
        row("connect -> state message (median)", g("connect_ms"), " ms")
        row("page load, GET / gzip (median)", g("page_load", "p50_ms"), " ms")
        row("page load, GET / gzip (p90)", g("page_load", "p90_ms"), " ms")
        row("latency phase: wall", g("latency", "wall_s"), " s")
        row("latency phase: loadgen CPU", g("latency", "loadgen_cpu_s"), " s")
        row("latency phase: server CPU", g("latency", "server_cpu_s"), " s")
        row("broadcasts/s (every client)", g("throughput", "broadcasts_per_s"))
        row("commands/s applied", g("throughput", "commands_per_s"))
        if rt == "micropython":
            row("  1 burst in flight, delayed ACKs: commands/s", g("throughput_delayed_ack", "commands_per_s"))
        row("throughput phase: wall", g("throughput", "wall_s"), " s")
        row("throughput phase: loadgen CPU", g("throughput", "loadgen_cpu_s"), " s")
        row("throughput phase: server CPU", g("throughput", "server_cpu_s"), " s")
        # from the throughput phase, where the server is kept busy; the latency phase has one
        # command in flight and too little CPU time for the 10 ms ticks of /proc (JSON only)
        row("server CPU per command to all %s clients" % n, g("throughput", "server_cpu_us_per_command"), " us")
        if rt == "micropython":
            heap_rows(rows, rt, "", o, m)
            capacity_rows(rows, rt, "", r)
    rf = results["runs"].get("micropython", {}).get("romfs")
    if rf:
        rt = "micropython"
        heap_rows(rows, rt, "ROMFS: ", rf.get("ours", {}), rf.get("microdot", {}))
        sl = rf.get("small_heap_latency")
        if sl and "error" in sl:  # its last line says why (a MemoryError at boot, most likely)
            rows.append((rt, "ROMFS: latency at heapsize=%s" % a_heapsize(results), sl["error"][-72:], "-", "-"))
        elif sl:
            for p in ("p50", "p90", "p99", "max"):
                label = "ROMFS: latency %s at heapsize=%s, %s clients" % (p, sl.get("heapsize"), sl.get("clients"))
                rows.append((rt, label, fmt(sl.get(p + "_ms"), " ms") if "error" not in sl else sl["error"], "-", "-"))
        capacity_rows(rows, rt, "ROMFS: ", rf)
    for label, fig in results["runs"].get("micropython", {}).get("interpreters", {}).items():
        prefix = label + ": "
        heap_rows(rows, "micropython", prefix, fig.get("ours", {}), fig.get("microdot", {}))
        capacity_rows(rows, "micropython", prefix, fig)
    ck = results["runs"].get("micropython", {}).get("clock_heap")
    if ck:
        for key, what in (("bare", "without clock"), ("full", "with clock + 16 schedules + 4 inputs")):
            label = "32-bit frozen: heap in use, running, %s" % what
            rows.append(("micropython", label, fmt(ck.get(key), " B") if "error" not in ck else ck["error"], "-", "-"))
    for rt, r in results["runs"].items():
        lk = r.get("link_latency")
        if lk:
            for p in ("p50", "p99"):
                label = "link: A's command -> B's %d clients, %s" % (lk["clients_of_b"], p)
                rows.append((rt, label, fmt(lk[p + "_ms"], " ms"), "-", "-"))
    pg = results.get("page")
    if pg:
        rows.append(("-", "page GET / gzip: Content-Length", fmt(pg["gzip"]["content_length"], " B"), "-", "-"))
        rows.append(("-", "page GET / gzip: bytes on the wire", fmt(pg["gzip"]["wire_bytes"], " B"), "-", "-"))
        rows.append(("-", "page GET / plain: Content-Length", fmt(pg["plain"]["content_length"], " B"), "-", "-"))
    mp = results.get("mpy")
    if mp:
        rows.append(
            (
                "-",
                ".mpy total (firmware / microdot pkg)",
                fmt(mp["total"], " B"),
                fmt(mp.get("microdot_total"), " B"),
                fmt(ratio(mp["total"], mp.get("microdot_total"))),
            )
        )
    for rt, u in results.get("unmask", {}).items():
        rows.append(
            (
                rt,
                "unmask 64 KiB: fast path (%s)" % ("viper" if u["unmask_is_viper"] else "int"),
                fmt(u["unmask_us"] / 1000.0, " ms"),
                "-",
                "-",
            )
        )
        rows.append((rt, "unmask 64 KiB: _unmask_int", fmt(u["int_us"] / 1000.0, " ms"), "-", "-"))
        rows.append((rt, "unmask 64 KiB: per-byte loop", fmt(u["loop_us"] / 1000.0, " ms"), "-", "-"))
        rows.append((rt, "unmask speed-up fast/loop", fmt(u["speedup_vs_loop"], "x"), "-", "-"))
    return format_rows(rows)


# Rows (runtime, figure, ours, microdot, ratio) as a text table with a head.
def format_rows(rows):
    head = ("runtime", "figure", "ours", "microdot", "ours/microdot")
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    out = [
        "  ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i]) for i, c in enumerate(r)) for r in [head] + rows
    ]
    out.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(out)


# The board-faithful figures (board.py) as a table; None when they were not taken.
def board_table(results):
    b = _dig(results, ("runs", "micropython", "board"))
    if not b or "interpreters" not in b:
        return None
    rows = []
    rt = "micropython"
    for label, fig in b["interpreters"].items():
        heap_rows(rows, rt, label + ": ", fig.get("ours", {}), fig.get("microdot", {}))
        capacity_rows(rows, rt, label + ": ", fig)
    frozen = "%d-bit frozen: " % b["bits"]
    sh = b.get("small_heap")
    if sh:
        label = frozen + "%d clients + 2 page loads + 1 link at heapsize=%s: runs passed" % (
            sh["clients"], sh["heapsize"])
        rows.append((rt, label, "%d of %d" % (sh["passed"], sh["runs"]), "-", "-"))
        if "smallest_kib" in sh:
            label = frozen + "smallest heap for that case (steps of 2K)"
            rows.append((rt, label, fmt(sh["smallest_kib"], "K"), "-", "-"))
    mq = b.get("mqtt")
    if mq and "error" in mq:
        rows.append((rt, frozen + "MQTT heap cost", mq["error"][:72], "-", "-"))
    elif mq:
        rows.append((rt, frozen + "heap once ready, no mqtt section", fmt(mq["without_median"], " B"), "-", "-"))
        rows.append((rt, frozen + "MQTT heap cost (connected, discovery done)", fmt(mq["cost"], " B"), "-", "-"))
    return format_rows(rows)


# The targets on the board-faithful build: (target, measured, met).
def board_targets(results):
    out = []
    b = _dig(results, ("runs", "micropython", "board"))
    if not b or "interpreters" not in b:
        return out
    label = "%d-bit frozen" % b["bits"]
    o = _dig(b, ("interpreters", label, "ours")) or {}
    if o.get("boot_heap"):
        out.append(("%s: heap once ready <= 10 KB" % label, "%d B" % o["boot_heap"], o["boot_heap"] <= 10 * 1024))
    if o.get("per_client_heap") is not None:
        pc = o["per_client_heap"]
        out.append(("%s: heap per extra client <= 0.4 KB" % label, "%d B" % pc, pc <= 0.4 * 1024))
    sh = b.get("small_heap")
    if sh:
        why = "; first failure: %s" % sh["failures"][0] if sh["failures"] else ""
        out.append(("%s: %d clients + 2 page loads + 1 link at heapsize=%s, ten runs of ten"
                    % (label, sh["clients"], sh["heapsize"]), "%d of %d passed%s" % (sh["passed"], sh["runs"], why),
                    sh["runs"] >= 10 and sh["passed"] == sh["runs"]))
    mq = b.get("mqtt")
    target = "%s: MQTT heap cost (connected, discovery done) <= 6 KB" % label
    if mq and "error" in mq:
        out.append((target, "not measured: %s" % mq["error"], False))
    elif mq:
        out.append((target, "%d B (%d with, %d without)" % (mq["cost"], mq["with_median"], mq["without_median"]),
                    mq["cost"] <= 6 * 1024))
    return out


# The targets next to the measured values: (target, measured, met).
def targets(results):
    out = board_targets(results)
    mp = results["runs"].get("micropython", {})
    hs = results["options"]["heapsize"]
    cap = mp.get("capacity", {}).get(hs, {}).get("ours")
    if cap:
        out.append(
            (
                "micropython -X heapsize=%s: boot and serve 12 WS clients + page loads, no MemoryError" % hs,
                "%s clients (%s)" % (_cap(cap), cap.get("stopped_by")),
                cap["clients"] >= 12,
            )
        )
    rcap = _dig(mp, ("romfs", "capacity", hs, "ours"))
    if rcap:
        out.append(
            (
                "same, with the firmware in ROMFS",
                "%s clients (%s)" % (_cap(rcap), rcap.get("stopped_by")),
                rcap["clients"] >= 12,
            )
        )
    o = mp.get("ours", {})
    if o.get("boot_heap"):
        out.append(
            ("heap once ready <= 20 KB (64-bit unix port)", "%d B" % o["boot_heap"], o["boot_heap"] <= 20 * 1024)
        )
    rb = _dig(mp, ("romfs", "ours", "boot_heap"))
    if rb:
        out.append(("same, with the firmware in ROMFS", "%d B" % rb, rb <= 20 * 1024))
    ck = mp.get("clock_heap")
    if ck and "cost" in ck:
        what = "clock + 16 schedules + 4 inputs <= 5 KB (32-bit frozen)"
        out.append((what, "%d B" % ck["cost"], ck["cost"] <= ck["budget"]))
    if o.get("per_client_heap") is not None:
        out.append(("heap per extra client <= 2 KB", "%d B" % o["per_client_heap"], o["per_client_heap"] <= 2 * 1024))
    for rt, r in results["runs"].items():
        lo, lm = _dig(r, ("ours", "latency")), _dig(r, ("microdot", "latency"))
        if lo and lm:
            out.append(
                (
                    "%s: latency to all %d clients p50 and p99 below microdot's" % (rt, lo["clients"]),
                    "p50 %.2f vs %.2f ms, p99 %.2f vs %.2f ms"
                    % (lo["p50_ms"], lm["p50_ms"], lo["p99_ms"], lm["p99_ms"]),
                    lo["p50_ms"] < lm["p50_ms"] and lo["p99_ms"] < lm["p99_ms"],
                )
            )
        to, tm = _dig(r, ("ours", "throughput")), _dig(r, ("microdot", "throughput"))
        if to and tm:
            out.append(
                (
                    "%s: broadcast throughput >= 2x microdot's" % rt,
                    "%.0f vs %.0f broadcasts/s (%.2fx); commands applied %.0f vs %.0f/s"
                    % (
                        to["broadcasts_per_s"],
                        tm["broadcasts_per_s"],
                        to["broadcasts_per_s"] / tm["broadcasts_per_s"],
                        to["commands_per_s"],
                        tm["commands_per_s"],
                    ),
                    to["broadcasts_per_s"] >= 2 * tm["broadcasts_per_s"],
                )
            )
        co, cm = _dig(to, ("server_cpu_us_per_command",)), _dig(tm, ("server_cpu_us_per_command",))
        if co and cm:
            out.append(
                (
                    "%s: server CPU per command to all clients (pipelined) <= 1/3 of microdot's" % rt,
                    "%.1f vs %.1f us (%.2fx)" % (co, cm, co / cm),
                    co * 3 <= cm,
                )
            )
    pg = results.get("page")
    if pg:
        out.append(
            (
                "gzipped page < 8 KB",
                "%d B Content-Length" % pg["gzip"]["content_length"],
                0 < pg["gzip"]["content_length"] < 8 * 1024,
            )
        )
    u = results.get("unmask", {}).get("micropython")
    if u:
        out.append(
            (
                "unmask 64 KB under micropython >= 10x the per-byte loop",
                "%.1fx (%.2f ms vs %.2f ms)" % (u["speedup_vs_loop"], u["unmask_us"] / 1000.0, u["loop_us"] / 1000.0),
                u["speedup_vs_loop"] >= 10,
            )
        )
    return out


def machine():
    info = {
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "nproc": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    try:
        out = subprocess.run(
            [
                runtime.micropython(),
                "-c",
                "import sys; print('%d.%d.%d' % sys.implementation.version[:3], sys.version.split('; ')[-1])",
            ],
            capture_output=True,
            timeout=30,
            text=True,
        ).stdout.strip()
        info["micropython"] = out
    except (OSError, subprocess.TimeoutExpired, SystemExit):
        info["micropython"] = None
    try:
        rev = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "firmware"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        info["firmware"] = (rev + (" + uncommitted changes in firmware/" if dirty else "")) or "not a git checkout"
    except (OSError, subprocess.TimeoutExpired):
        info["firmware"] = None
    return info


# The report on stdout: what ran where, the table, the targets.
def print_report(results):
    a = results["options"]
    mi = results["machine"]
    print(
        "relaynode benchmarks: %s, %s cores, Python %s, MicroPython %s, %s"
        % (mi["machine"], mi["nproc"], mi["python"], mi["micropython"], mi["date"])
    )
    print("firmware: %s" % mi.get("firmware"))
    if mi.get("loadavg_start"):
        print(
            "load average at start %.2f, at end %.2f (other work on the machine skews the figures)"
            % (mi["loadavg_start"][0], mi["loadavg_end"][0])
        )
    print(
        "load generator: one selector loop in this process, raw sockets; %d clients; latency and throughput "
        "figures are medians of %d run(s); %.0f s in all\n" % (a["clients"], a["repeat"], results["elapsed_s"])
    )
    bt = board_table(results)
    if bt:
        b = results["runs"]["micropython"]["board"]
        print("board-faithful: MicroPython built %d-bit (tools/mpbuild.py), each server frozen, as .mpy files, "
              "in ROMFS:\n" % b["bits"])
        print(bt)
        print("\nthe rest: CPython, and the MicroPython unix port from PyPI (64-bit):\n")
    print(table(results))
    print("\ntargets:")
    for t in results["targets"]:
        print("  [%s] %s: %s" % ("met" if t["met"] else "NOT met", t["target"], t["measured"]))
