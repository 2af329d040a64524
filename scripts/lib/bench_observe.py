#!/usr/bin/env python3
"""What looking costs: generate -> drop with nobody looking, with the status page and /status
fetched every second, and with a tap attached whose reader never reads.

    bench_observe.py --binary BIN --count N --runs R --workdir DIR

Each run starts `switchyard run`; once the endpoints answer, the observer of the mode attaches,
then the source's count is read from /status (t0, m0, and the process's CPU time c0) and the
process runs to its end (t1, c1, from wait4): the rate is (N - m0) / (t1 - t0), and the CPU
rate (N - m0) / (c1 - c0), messages per CPU second, the same window for every mode. This
machine is shared: wall-clock rates swing by a quarter from run to run with the load of others,
while CPU per message holds, so the bound is checked on the CPU rate (the pipeline is CPU-bound,
so CPU per message is what throughput is made of). Modes alternate run by run. Prints one JSON
object per run and a summary; exits non-zero when a mode's median CPU rate is below 95% of the
plain one, when a run does not exit 0, or when the tap run shows no drop (the reader was not
slow at all) or counts that do not add up.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


def get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
        return answer.read()


def status(port):
    return json.loads(get(port, "/status"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def document(path, count, port):
    with open(path, "w") as f:
        f.write(f"""sources:
  - name: gen
    generate: {{count: {count}, size: 100, batchSize: 500}}
targets:
  - name: sink
    drop: {{}}
routes:
  - {{from: [gen], to: [sink]}}
observability: {{listen: "127.0.0.1:{port}", logFormat: json, tap: {{enabled: true, buffer: 1000}}}}
""")


def cpu_seconds(pid):
    """User plus system CPU time of the process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(binary, workdir, count, mode):
    port = free_port()
    doc = f"{workdir}/observe-{mode}.yaml"
    document(doc, count, port)
    log = open(doc + ".log", "w")
    process = subprocess.Popen([binary, "run", "-c", doc], stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            get(port, "/livez", timeout=0.2)
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                raise SystemExit(f"{mode}: the endpoints never answered (see {doc}.log)")
            time.sleep(0.005)
    stop = threading.Event()
    observer = None
    tap_socket = None
    if mode == "page":
        def poll():
            while not stop.is_set():
                try:
                    get(port, "/")
                    get(port, "/status")
                except OSError:
                    pass
                stop.wait(1.0)
        observer = threading.Thread(target=poll, daemon=True)
        observer.start()
    elif mode == "tap":
        tap_socket = socket.socket()
        tap_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        tap_socket.connect(("127.0.0.1", port))
        tap_socket.sendall(b"GET /tap?at=source:gen HTTP/1.1\r\nHost: x\r\n\r\n")
        while not status(port)["tap"]["attached"]:
            time.sleep(0.002)
    first = status(port)
    t0 = time.monotonic()
    c0 = cpu_seconds(process.pid)
    m0 = first["sources"][0]["messages"]
    tap_counts = None
    if mode == "tap":
        time.sleep(0.3)
        try:
            tap_counts = status(port)["tap"]["attached"][0]
        except (OSError, IndexError, KeyError):
            tap_counts = None
    _, wait_status, usage = os.wait4(process.pid, 0)
    t1 = time.monotonic()
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    code = process.returncode
    c1 = usage.ru_utime + usage.ru_stime
    stop.set()
    if tap_socket:
        tap_socket.close()
    log.close()
    result = {"mode": mode, "exit": code, "window_messages": count - m0, "seconds": round(t1 - t0, 3),
              "rate": int((count - m0) / (t1 - t0)) if t1 > t0 else 0,
              "cpu_seconds": round(c1 - c0, 3), "cpu_rate": int((count - m0) / (c1 - c0)) if c1 > c0 else 0}
    if tap_counts is not None:
        result["tap"] = tap_counts
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--count", type=int, default=30_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    modes = ["plain", "page", "tap"]
    rates = {mode: [] for mode in modes}
    cpu_rates = {mode: [] for mode in modes}
    failures = []
    for round_index in range(args.runs):
        for mode in modes[round_index % 3:] + modes[:round_index % 3]:
            result = run(args.binary, args.workdir, args.count, mode)
            print(json.dumps(result), flush=True)
            if result["exit"] != 0:
                failures.append(f"{mode}: exit {result['exit']}")
            if mode == "tap":
                counts = result.get("tap")
                if not counts or counts["seen"] == 0 or counts["dropped"] == 0:
                    failures.append(f"tap: the tap saw nothing or dropped nothing ({counts})")
                elif counts["seen"] != counts["sent"] + counts["dropped"] + counts["buffered"]:
                    failures.append(f"tap: counts do not add up ({counts})")
            rates[mode].append(result["rate"])
            cpu_rates[mode].append(result["cpu_rate"])
    medians = {mode: int(statistics.median(values)) for mode, values in rates.items()}
    cpu_medians = {mode: int(statistics.median(values)) for mode, values in cpu_rates.items()}
    summary = {"medians": medians, "cpu_medians": cpu_medians,
               "page_vs_plain": round(medians["page"] / medians["plain"], 3),
               "tap_vs_plain": round(medians["tap"] / medians["plain"], 3),
               "cpu_page_vs_plain": round(cpu_medians["page"] / cpu_medians["plain"], 3),
               "cpu_tap_vs_plain": round(cpu_medians["tap"] / cpu_medians["plain"], 3)}
    print(json.dumps(summary))
    for mode in ("page", "tap"):
        if cpu_medians[mode] < 0.95 * cpu_medians["plain"]:
            failures.append(f"{mode}: median {cpu_medians[mode]} messages per CPU second is below 95% of plain ({cpu_medians['plain']})")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
