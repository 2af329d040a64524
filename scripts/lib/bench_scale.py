#!/usr/bin/env python3
"""Kafka -> drop with 1, 2 and 3 `switchyard run` processes in one consumer group, and the time
a scale step takes.

    bench_scale.py --binary BIN --brokers B --topic T --count N --workdir DIR [--runs R]

Throughput: K processes (K = 1, 2, 3) start together in a fresh group, each consuming from the
earliest offset into a drop target; the run ends when the sum of
switchyard_source_acknowledged_messages_total over the K processes reaches N. Reported: whole
time (first start to N, including the group join) and the rate. No process may exit early; the
sum must reach N, and what it counts beyond N (messages delivered twice around a rebalance) is
reported as duplicates.

Scale step: kcat produces to the topic at about 2,000 msg/s (live traffic on every partition);
one process of a fresh group consumes it from the end of the topic; once it receives messages, a
second process of the group starts; measured from the second process's start to its first
submitted message (process start, group join, the rebalance that moves partitions to it, its
first fetch). Repeated R times (fresh group each); median reported. librdkafka's mock cluster
holds every join into a non-empty group for session.timeout.ms - 1 s before it elects a leader
(rdkafka_mock_cgrp.c; a real broker completes the join once the known members rejoin), so with
session.timeout.ms 3000 about 2 s of every step is the mock's; the summary gives both.
Prints one JSON object per measurement and a final summary object.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_run import metric_sum as metric, scrape  # noqa: E402  (one scraper for every benchmark)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SESSION_TIMEOUT_MS = 3000
MOCK_JOIN_DELAY = (SESSION_TIMEOUT_MS - 1000) / 1000


class Member:
    def __init__(self, binary, workdir, label, brokers, topic, group, delay=None, start="earliest"):
        self.port = free_port()
        self.config = f"{workdir}/{label}.yaml"
        drop = "{delay: %s}" % delay if delay else "{}"
        with open(self.config, "w") as f:
            f.write(f"""sources:
  - name: in
    kafka:
      brokers: ["{brokers}"]
      topics: [{topic}]
      group: {group}
      startOffset: {start}
      batchSize: 2000
      options: {{session.timeout.ms: "{SESSION_TIMEOUT_MS}", heartbeat.interval.ms: "500"}}
targets:
  - name: out
    drop: {drop}
routes:
  - {{from: [in], to: [out]}}
delivery: {{memoryLimit: 512MiB}}
observability: {{listen: "127.0.0.1:{self.port}", logLevel: warning, logFormat: json}}
""")
        self.log = open(self.config + ".log", "w")
        self.started = time.monotonic()
        self.process = subprocess.Popen([binary, "run", "-c", self.config], stdout=subprocess.DEVNULL, stderr=self.log)

    def value(self, name):
        return metric(scrape(self.port), name)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def throughput(args, members_count, group):
    members = [Member(args.binary, args.workdir, f"tp{members_count}-{i}", args.brokers, args.topic, group) for i in range(members_count)]
    started = min(m.started for m in members)
    total = 0
    done = None
    deadline = started + args.timeout
    failure = None
    while time.monotonic() < deadline:
        if any(m.process.poll() is not None for m in members):
            failure = "a process exited early"
            break
        values = [m.value("switchyard_source_acknowledged_messages_total") for m in members]
        total = int(sum(v or 0 for v in values))
        if total >= args.count:
            done = time.monotonic()
            break
        time.sleep(0.02)
    per_member = [int(m.value("switchyard_source_acknowledged_messages_total") or 0) for m in members]
    exits = [m.stop() for m in members]
    seconds = (done or time.monotonic()) - started
    result = {"measure": "throughput", "processes": members_count, "seconds": round(seconds, 3),
              "acknowledged": sum(per_member), "duplicates": max(0, sum(per_member) - args.count), "per_process": per_member,
              "rate": int(args.count / seconds) if done else 0, "exits": exits}
    if failure or not done:
        result["failure"] = failure or f"timed out at {total}"
    elif any(code != 0 for code in exits):
        result["failure"] = f"exit statuses {exits}"
    return result


class LiveTraffic:
    """kcat -P fed about `rate` keyed messages per second until stopped."""

    def __init__(self, brokers, topic, rate=2000):
        self.process = subprocess.Popen(["kcat", "-P", "-b", brokers, "-t", topic, "-K:", "-X", "linger.ms=5"],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, args=(rate,), daemon=True)
        self.thread.start()

    def run(self, rate):
        sequence = 0
        while not self.stop_event.is_set():
            lines = "".join(f"live{sequence + i}:l{sequence + i:010d}{'q' * 88}\n" for i in range(rate // 20))
            sequence += rate // 20
            try:
                self.process.stdin.write(lines.encode())
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            self.stop_event.wait(0.05)

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        self.process.stdin.close()
        self.process.wait(timeout=30)


def scale_step(args, index):
    group = f"scale-step-{os.getpid()}-{index}"
    first = Member(args.binary, args.workdir, f"step{index}-a", args.brokers, args.topic, group, start="latest")
    deadline = time.monotonic() + 60
    while (first.value("switchyard_source_messages_total") or 0) == 0:
        if time.monotonic() > deadline or first.process.poll() is not None:
            first.stop()
            return {"measure": "scale_step", "failure": "the first process never consumed"}
        time.sleep(0.02)
    time.sleep(1.0)
    second = Member(args.binary, args.workdir, f"step{index}-b", args.brokers, args.topic, group, start="latest")
    reached = None
    deadline = second.started + 60
    while time.monotonic() < deadline:
        if (second.value("switchyard_source_messages_total") or 0) > 0:
            reached = time.monotonic()
            break
        time.sleep(0.01)
    exits = [second.stop(), first.stop()]
    result = {"measure": "scale_step", "seconds": round(reached - second.started, 3) if reached else None, "exits": exits}
    if reached is None:
        result["failure"] = "the new process never received a message"
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    failures = []
    rates = {}
    for members in (1, 2, 3):
        result = throughput(args, members, f"scale-tp-{os.getpid()}-{members}")
        print(json.dumps(result), flush=True)
        rates[members] = result
        if "failure" in result:
            failures.append(f"{members} processes: {result['failure']}")
    steps = []
    traffic = LiveTraffic(args.brokers, args.topic)
    for index in range(args.runs):
        result = scale_step(args, index)
        print(json.dumps(result), flush=True)
        if "failure" in result:
            failures.append(f"scale step {index}: {result['failure']}")
        else:
            steps.append(result["seconds"])
    traffic.stop()
    summary = {"measure": "summary", "rates": {k: v["rate"] for k, v in rates.items()},
               "seconds": {k: v["seconds"] for k, v in rates.items()},
               "duplicates": {k: v.get("duplicates") for k, v in rates.items()},
               "scale_step_median": statistics.median(steps) if steps else None, "scale_steps": steps,
               "mock_join_delay": MOCK_JOIN_DELAY,
               "cores": os.cpu_count()}
    print(json.dumps(summary))
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
