#!/usr/bin/env python3
"""Memory through a long target outage: generate -> redis while the Redis server is gone.

    bench_soak.py --binary BIN --workdir DIR [--outage S] [--limit-mib M] [--rate R]

Starts its own redis-server on a free loopback port and `switchyard run` with a generate source
(R messages per second of 1,000 bytes, each its own buffer) into a redis target (SET
soak:{{ offset }}), memoryLimit M MiB. After 10 s the Redis server is stopped (SIGTERM, no
save) for S seconds while the source keeps producing, then started again on the same port; the
run goes on until the source has been caught up for 10 s. Every second it samples the process's
resident memory (VmRSS) and the source's counters from /status. Prints one JSON line per 10 s and
a summary; exits non-zero when the peak RSS exceeds memoryLimit + 64 MiB, when the target was
not shown as held (paused, connecting or down) during the outage, or when fewer keys are in Redis at the end than messages
acknowledged.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as answer:
        return json.loads(answer.read())


def start_redis(port, workdir):
    # Persistence on (append-only file, written out on SIGTERM): what was written before the
    # outage must still be there after it, so that every acknowledged message can be counted.
    return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                             "--appendfsync", "everysec", "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def dbsize(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True, timeout=10).stdout.strip()
    return int(out.split()[-1]) if out else -1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--outage", type=float, default=600)
    parser.add_argument("--limit-mib", type=int, default=64)
    # 5,000 msg/s fills the 64 MiB budget within 15 s; what the source owes after the outage
    # (rate x outage) is stored in Redis afterwards: at 20,000 msg/s a 600 s outage left more
    # than 20 GiB in the Redis server, nearly all of this machine's memory.
    parser.add_argument("--rate", type=int, default=5000)
    args = parser.parse_args()
    redis_port = free_port()
    http_port = free_port()
    redis = start_redis(redis_port, args.workdir)
    time.sleep(0.5)
    doc = f"{args.workdir}/soak.yaml"
    pad = "x" * 980
    with open(doc, "w") as f:
        f.write(f"""sources:
  - name: gen
    generate: {{rate: {args.rate}, value: "{{{{ offset }}}}-{pad}", batchSize: 500}}
targets:
  - name: store
    redis: {{url: "redis://127.0.0.1:{redis_port}/0", key: "soak:{{{{ offset }}}}", timeout: 2s}}
    # a queue far larger than the budget, so that the byte budget is what holds the source back
    queueCapacity: 10000000
routes:
  - {{from: [gen], to: [store]}}
delivery: {{memoryLimit: {args.limit_mib}MiB, retry: {{initialBackoff: 100ms, maxBackoff: 2s}}}}
observability: {{listen: "127.0.0.1:{http_port}", logFormat: json, logLevel: warning}}
""")
    log = open(doc + ".log", "w")
    process = subprocess.Popen([args.binary, "run", "-c", doc], stdout=subprocess.DEVNULL, stderr=log)
    started = time.monotonic()
    peak = 0.0
    paused_seen = False
    phase = "before"
    outage_start = started + 10
    outage_end = outage_start + args.outage
    caught_up_since = None
    failures = []
    samples = []
    last_print = 0
    while True:
        now = time.monotonic()
        if process.poll() is not None:
            failures.append(f"switchyard exited with {process.returncode}")
            break
        rss = rss_mib(process.pid)
        peak = max(peak, rss)
        try:
            st = status(http_port)
        except OSError:
            st = None
        source = st["sources"][0] if st else {}
        target = st["targets"][0] if st else {}
        if phase == "before" and now >= outage_start:
            redis.send_signal(signal.SIGTERM)
            redis.wait(timeout=30)
            phase = "outage"
        elif phase == "outage" and now >= outage_end:
            redis = start_redis(redis_port, args.workdir)
            phase = "after"
        # Held: the runner reports the target paused (a write failed as target-down) or not
        # connected (it is reconnecting); either way nothing is acknowledged past it.
        if phase == "outage" and target.get("state") in ("paused", "connecting", "down"):
            paused_seen = True
        if phase == "after":
            if source.get("inflight", 1 << 30) < 2 * args.rate:
                caught_up_since = caught_up_since or now
            else:
                caught_up_since = None
            if caught_up_since and now - caught_up_since >= 10:
                break
            if now - outage_end > 600:
                failures.append("not caught up within 10 minutes after the outage")
                break
        samples.append(rss)
        if now - last_print >= 10:
            last_print = now
            print(json.dumps({"t": round(now - started), "phase": phase, "rss_mib": round(rss, 1), "peak_mib": round(peak, 1),
                              "submitted": source.get("messages"), "acknowledged": source.get("acknowledged"),
                              "inflight": source.get("inflight"), "target": target.get("state"),
                              "memory_used_mib": round(st["memory"]["usedBytes"] / 1048576, 1) if st else None}), flush=True)
        time.sleep(max(0, 1 - (time.monotonic() - now)))
    final = status(http_port) if process.poll() is None else None
    acknowledged = final["sources"][0]["acknowledged"] if final else 0
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
    keys = dbsize(redis_port)
    redis.send_signal(signal.SIGTERM)
    redis.wait(timeout=30)
    bound = args.limit_mib + 64
    summary = {"outage_seconds": args.outage, "rate": args.rate, "memory_limit_mib": args.limit_mib,
               "peak_rss_mib": round(peak, 1), "bound_mib": bound, "samples": len(samples),
               "paused_during_outage": paused_seen, "acknowledged": acknowledged, "redis_keys": keys,
               "exit": process.returncode}
    print(json.dumps(summary))
    if peak > bound:
        failures.append(f"peak RSS {peak:.1f} MiB above {bound} MiB")
    if not paused_seen:
        failures.append("the target was never shown as held (paused, connecting, down) during the outage")
    if keys < acknowledged:
        failures.append(f"{acknowledged} acknowledged but only {keys} keys in Redis")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
