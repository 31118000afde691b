"""Soak: hours of mixed load, and whether the service's processes grow while it runs.

``python -m loadtest.soak --url http://127.0.0.1:8000 --duration-s 1800 --pid <server pid> --metrics-url http://127.0.0.1:9090/metrics``
``python -m loadtest.soak --url http://127.0.0.1:8080 --duration-s 1800 --container <name> --metrics-url ...``

Closed-loop clients send ``POST /invocations`` with a mix of image sizes and output formats;
a share of the requests repeat a (prompt, seed, size, format) already sent, so the result cache
is hit, and 10% are cancelled: the client gives up part-way (its connection closes), as a
timed-out caller would. Meanwhile every ``--sample-every-s`` the tool reads, for each process of
the server's process tree (``--pid``: the process that started Ray, e.g. ``loadtest.app_server``
or the entrypoint; ``--container``: the container's init process, seen from the host):

* resident memory (``VmRSS``), open file descriptors and threads, from ``/proc``;
* Ray's object-store use, from Ray's Prometheus endpoint (``--metrics-url``, optional).

It prints each figure after the warm-up (the baseline) and at the end, and the least-squares slope
per 1,000 requests over the samples after the warm-up. It fails (exit 1) on any request that
did not succeed (other than the cancelled ones), on a process of the server that vanished during
the run, or on growth beyond the stated bounds (``--max-*``); the report says which. Exit 2: bad
arguments or a server that is not there.

Bounds: resident memory may grow at most ``--max-rss-mib-per-1k`` MiB per 1,000 requests in any
one process (slope) and ``--max-rss-growth-mib`` in all (end minus baseline); descriptors and
threads at most ``--max-fd-growth`` / ``--max-thread-growth`` more at the end than at the
baseline, per process; the object store at most ``--max-object-store-growth-mib`` more at the
end (nothing is in flight then).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest.workload import DEFAULT_PROMPTS, parse_sizes

MIB = 1024 * 1024
DEFAULT_SIZES = "64x64,128x128,96x160,256x256"
FORMATS = ("jpeg", "png", "webp")


# --- the processes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessSample:
    pid: int
    name: str  # what the process is: Ray's process title (ray::ServeReplica:...), else its command
    rss_bytes: int
    fds: int
    threads: int


def _read_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)


def process_name(pid: int) -> str:
    """A stable, readable name: Ray's replica titles without the method they are running now."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    if cmdline.startswith("ray::"):
        # "ray::ServeReplica:sd-turbo:SDTurboModel.generate" while it runs a call: keep the actor.
        return cmdline.split()[0].split(".")[0]
    words = cmdline.split()
    if not words:
        return "?"
    # "python -m loadtest.app_server ..." -> "python -m loadtest.app_server"; binaries by their name.
    program = os.path.basename(words[0])
    if not program.startswith("python"):
        return program
    for index, word in enumerate(words[1:], 1):
        if word == "-m" and index + 1 < len(words):
            return f"{program} -m {words[index + 1]}"
        if word.endswith(".py"):
            return f"{program} {os.path.basename(word)}"
    return program


def children_map() -> dict[int, list[int]]:
    """Every process's children, from /proc/*/stat (field 4: the parent's pid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command may hold spaces and parentheses: the fields follow the last ")".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def process_tree(root: int, exclude: Iterable[int] = ()) -> list[int]:
    """``root`` and all its descendants, less ``exclude`` and their descendants (this tool)."""
    children, excluded = children_map(), set(exclude)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in excluded:
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(found)


def sample_process(pid: int) -> ProcessSample | None:
    """None when the process has gone (between listing and reading it)."""
    try:
        status = _read_status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss_kib = int(status.get("VmRSS", "0 kB").split()[0])  # kernel threads and zombies have none
    return ProcessSample(pid, process_name(pid), rss_kib * 1024, fds, int(status["Threads"]))


# --- Ray's object store -------------------------------------------------------------------------
# Ray's own gauge (Prometheus text at the metrics agent's port): bytes in the object store by
# where they are; the shared-memory part is what fills /dev/shm.
OBJECT_STORE_METRIC = re.compile(r'^ray_object_store_memory\{([^}]*)\}\s+([0-9.eE+-]+)$', re.MULTILINE)


def object_store_bytes(metrics_text: str) -> int | None:
    """Bytes held in Ray's object store (shared memory and spilled), or None if Ray reports none yet."""
    values = [float(value) for labels, value in OBJECT_STORE_METRIC.findall(metrics_text) if "WORKER_HEAP" not in labels]
    return int(sum(values)) if values else None


SESSION_DIR_ARG = re.compile(r"--session_dir=(\S+)")


def ray_metrics_port(pids: Iterable[int]) -> int | None:
    """The port of Ray's metrics agent: the raylet's session directory keeps it in a file
    (``metrics_export_port_<node id>``), read through ``/proc/<pid>/root`` so that a container's
    own file system is seen from the host too."""
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found = SESSION_DIR_ARG.search(cmdline)
        if not found:
            continue
        for port_file in Path(f"/proc/{pid}/root{found.group(1)}").glob("metrics_export_port_*"):
            text = port_file.read_text().strip()
            if text.isdigit():
                return int(text)
    return None


class MetricsReader:
    """Reads Ray's Prometheus text: over loopback, or inside a container (its own loopback)."""

    def __init__(self, url: str | None, container: str | None = None):
        self.url, self.container = url, container

    def read(self) -> str:
        if self.container:
            fetch = f"import urllib.request; print(urllib.request.urlopen({self.url!r}, timeout=10).read().decode())"
            result = subprocess.run(
                ["docker", "exec", self.container, "python3", "-c", fetch], capture_output=True, text=True, timeout=30
            )
            return result.stdout
        import httpx

        return httpx.get(self.url, timeout=10).text

    def object_store(self) -> int | None:
        if not self.url:
            return None
        try:
            return object_store_bytes(self.read())
        except Exception:  # noqa: BLE001 - a missed reading is reported as such, not fatal
            return None


@dataclass
class Sample:
    at_s: float  # seconds since the load started
    requests: int  # requests completed (any outcome) so far
    processes: list[ProcessSample]
    object_store_bytes: int | None


# --- the load ----------------------------------------------------------------------------------
@dataclass
class LoadMix:
    sizes: list[tuple[int, int]]
    formats: tuple[str, ...] = FORMATS
    repeat_fraction: float = 0.3  # requests that repeat an earlier one exactly: cache hits
    cancel_fraction: float = 0.1  # requests the client abandons part-way
    repeat_pool: int = 16  # distinct repeated requests

    def __post_init__(self) -> None:
        rng = random.Random(24)
        self._repeated = [self._fresh(rng) for _ in range(self.repeat_pool)]

    def _fresh(self, rng: random.Random, seeded: bool = True) -> dict[str, Any]:
        width, height = rng.choice(self.sizes)
        body = {
            "prompt": rng.choice(DEFAULT_PROMPTS),
            "width": width,
            "height": height,
            "output_format": rng.choice(self.formats),
        }
        if seeded:
            body["seed"] = rng.randrange(0, 2**32)
        return body

    def next(self, rng: random.Random) -> tuple[dict[str, Any], bool]:
        """(body, cancel it?). The rest are new: half with a seed of their own (the result cache
        stores them, up to its byte budget, then evicts), half without (never cached)."""
        if rng.random() < self.repeat_fraction:
            body = rng.choice(self._repeated)
        else:
            body = self._fresh(rng, seeded=rng.random() < 0.5)
        return body, rng.random() < self.cancel_fraction


@dataclass
class Counts:
    ok: int = 0
    cached: int = 0
    cancelled: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + self.cancelled + self.errors


class Load:
    """``concurrency`` closed-loop clients until ``stop`` is set."""

    def __init__(self, url: str, mix: LoadMix, concurrency: int, timeout_s: float, seed: int = 0):
        self.url = url.rstrip("/") + "/invocations"
        self.mix = mix
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.seed = seed
        self.counts = Counts()
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def _cancel_after_s(self, rng: random.Random) -> float:
        # Part-way through a typical request: a fraction of the median latency so far.
        with self._lock:
            recent = self.counts.latencies_s[-200:]
        typical = statistics.median(recent) if recent else 0.2
        return max(0.005, rng.uniform(0.1, 0.9) * typical)

    def _client(self, index: int) -> None:
        import httpx

        rng = random.Random(self.seed * 1000 + index)
        with httpx.Client() as client:
            while not self.stop.is_set():
                body, cancel = self.mix.next(rng)
                started = time.monotonic()
                try:
                    if cancel:
                        # A fresh connection that the client closes when it gives up.
                        timeout = httpx.Timeout(self.timeout_s, read=self._cancel_after_s(rng))
                        response = httpx.post(self.url, json=body, timeout=timeout)
                    else:
                        response = client.post(self.url, json=body, timeout=self.timeout_s)
                except httpx.ReadTimeout:
                    if cancel:
                        with self._lock:
                            self.counts.cancelled += 1
                        continue
                    self._error(f"timed out after {self.timeout_s:g} s")
                    continue
                except httpx.TransportError as exc:
                    self._error(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.monotonic() - started
                if response.status_code != 200:
                    self._error(f"HTTP {response.status_code}: {response.text[:300]}")
                    continue
                with self._lock:
                    self.counts.ok += 1
                    self.counts.cached += bool(response.json().get("cached"))
                    self.counts.latencies_s.append(elapsed)

    def _error(self, what: str) -> None:
        with self._lock:
            self.counts.errors += 1
            if len(self.counts.error_examples) < 10:
                self.counts.error_examples.append(what)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        return threads


# --- the analysis ------------------------------------------------------------------------------
def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two distinct xs)."""
    if len(xs) < 2:
        return 0.0
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread


@dataclass(frozen=True)
class Bounds:
    rss_mib_per_1k: float
    rss_growth_mib: float
    fd_growth: int
    thread_growth: int
    object_store_growth_mib: float


@dataclass
class ProcessReport:
    pid: int
    name: str
    rss_mib: tuple[float, float]  # at the baseline, at the end
    fds: tuple[int, int]
    threads: tuple[int, int]
    rss_mib_per_1k: float
    fds_per_1k: float
    threads_per_1k: float


def analyse(samples: list[Sample], bounds: Bounds) -> tuple[list[ProcessReport], dict[str, Any], list[str]]:
    """Per-process figures between the first sample (the baseline) and the last, the object store,
    and the bounds broken (empty: passed)."""
    first, last = samples[0], samples[-1]
    failures: list[str] = []
    reports: list[ProcessReport] = []
    by_pid_last = {p.pid: p for p in last.processes}
    for start in first.processes:
        end = by_pid_last.get(start.pid)
        if end is None:
            failures.append(f"process {start.pid} ({start.name}) vanished during the run")
            continue
        series = [(s.requests, p) for s in samples for p in s.processes if p.pid == start.pid]
        xs = [requests / 1000.0 for requests, _ in series]
        report = ProcessReport(
            pid=start.pid,
            name=start.name,
            rss_mib=(start.rss_bytes / MIB, end.rss_bytes / MIB),
            fds=(start.fds, end.fds),
            threads=(start.threads, end.threads),
            rss_mib_per_1k=slope(xs, [p.rss_bytes / MIB for _, p in series]),
            fds_per_1k=slope(xs, [p.fds for _, p in series]),
            threads_per_1k=slope(xs, [p.threads for _, p in series]),
        )
        reports.append(report)
        # Growth only counts where it adds up to something: a small process's slope over a few
        # hundred requests is mostly noise.
        grew_mib = report.rss_mib[1] - report.rss_mib[0]
        if report.rss_mib_per_1k > bounds.rss_mib_per_1k and grew_mib > bounds.rss_mib_per_1k:
            failures.append(
                f"{report.name} (pid {report.pid}): resident memory grows {report.rss_mib_per_1k:.2f} MiB per "
                f"1,000 requests (bound {bounds.rss_mib_per_1k:g}; {report.rss_mib[0]:.0f} -> {report.rss_mib[1]:.0f} MiB)"
            )
        if report.fds[1] - report.fds[0] > bounds.fd_growth:
            failures.append(f"{report.name} (pid {report.pid}): open descriptors {report.fds[0]} -> {report.fds[1]} (bound +{bounds.fd_growth})")
        if report.threads[1] - report.threads[0] > bounds.thread_growth:
            failures.append(
                f"{report.name} (pid {report.pid}): threads {report.threads[0]} -> {report.threads[1]} (bound +{bounds.thread_growth})"
            )
    total_start = sum(p.rss_bytes for p in first.processes if p.pid in by_pid_last) / MIB
    total_end = sum(by_pid_last[p.pid].rss_bytes for p in first.processes if p.pid in by_pid_last) / MIB
    if total_end - total_start > bounds.rss_growth_mib:
        failures.append(
            f"resident memory of the server's processes grew {total_end - total_start:.0f} MiB "
            f"({total_start:.0f} -> {total_end:.0f}; bound {bounds.rss_growth_mib:g})"
        )
    store = {"start_bytes": first.object_store_bytes, "end_bytes": last.object_store_bytes}
    if first.object_store_bytes is not None and last.object_store_bytes is not None:
        grew = (last.object_store_bytes - first.object_store_bytes) / MIB
        if grew > bounds.object_store_growth_mib:
            failures.append(f"Ray's object store grew {grew:.1f} MiB (bound {bounds.object_store_growth_mib:g})")
    totals = {"rss_mib": (round(total_start, 1), round(total_end, 1)), "object_store": store}
    return reports, totals, failures


# --- the run -----------------------------------------------------------------------------------
def warmed_up(elapsed_s: float, requests: int, warmup_s: float, warmup_requests: int) -> bool:
    """Whether the baseline may be taken: ``warmup_s`` of load and ``warmup_requests`` answered.

    Memory is judged per 1,000 requests, and what a server allocates before it settles (allocator
    pools per image size, caches filling) comes with requests, not seconds: on a busy machine 30 s
    hold fewer requests, and that early growth, divided by fewer measured requests, reads as a leak.
    """
    return elapsed_s >= warmup_s and requests >= warmup_requests


def take_sample(root: int, started: float, load: Load, metrics: MetricsReader) -> Sample:
    processes = [s for s in (sample_process(pid) for pid in process_tree(root, exclude=[os.getpid()])) if s]
    with load._lock:
        done = load.counts.total
    return Sample(time.monotonic() - started, done, processes, metrics.object_store())


def container_root_pid(name: str) -> int:
    result = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name], capture_output=True, text=True, timeout=30)
    if result.returncode != 0 or not result.stdout.strip().isdigit() or int(result.stdout) == 0:
        raise SystemExit(f"soak: container {name!r} is not running: {result.stderr.strip() or result.stdout.strip()}")
    return int(result.stdout)


def run(
    args: argparse.Namespace, print_line: Callable[[str], None] = print
) -> tuple[int, dict[str, Any]]:
    import httpx

    root = args.pid if args.pid else container_root_pid(args.container)
    if not os.path.isdir(f"/proc/{root}"):
        raise SystemExit(f"soak: no process {root}")
    mix = LoadMix(parse_sizes(args.sizes), cancel_fraction=args.cancel_fraction, repeat_fraction=args.repeat_fraction)
    load = Load(args.url, mix, args.concurrency, args.timeout_s, seed=args.seed)
    bounds = Bounds(
        args.max_rss_mib_per_1k, args.max_rss_growth_mib, args.max_fd_growth, args.max_thread_growth,
        args.max_object_store_growth_mib,
    )
    metrics_url = args.metrics_url
    if not metrics_url:
        port = ray_metrics_port(process_tree(root, exclude=[os.getpid()]))
        metrics_url = f"http://127.0.0.1:{port}/metrics" if port else None
    metrics = MetricsReader(metrics_url, container=args.container)
    print_line(f"soak: measuring the process tree of pid {root}; Ray's metrics from {metrics_url or 'nowhere (not found)'}")
    with httpx.Client() as client:
        # 1. The server answers, and what it looks like before any load.
        ping = client.get(args.url.rstrip("/") + "/ping", timeout=10)
        if ping.status_code != 200:
            raise SystemExit(f"soak: {args.url}/ping answers {ping.status_code}, not 200")
        started = time.monotonic()
        before = take_sample(root, started, load, metrics)
        # 2. Load; the baseline once the warm-up is over (first allocations, caches filling).
        clients = load.start()
        samples: list[Sample] = []
        end = started + args.duration_s
        next_sample = started + args.warmup_s
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_sample and (samples or warmed_up(now - started, load.counts.total, args.warmup_s, args.warmup_requests)):
                if not samples:
                    next_sample = now  # the baseline: the next samples follow it every sample_every_s
                samples.append(take_sample(root, started, load, metrics))
                s = samples[-1]
                print_line(
                    f"soak: {s.at_s:6.0f} s {s.requests:6d} requests, rss {sum(p.rss_bytes for p in s.processes) / MIB:7.1f} MiB, "
                    f"fds {sum(p.fds for p in s.processes)}, threads {sum(p.threads for p in s.processes)}, "
                    f"object store {'?' if s.object_store_bytes is None else f'{s.object_store_bytes / MIB:.1f} MiB'}, "
                    f"errors {load.counts.errors}"
                )
                next_sample += args.sample_every_s
            # At least a short nap: while the warm-up waits for requests, next_sample is past.
            time.sleep(min(0.5, max(0.05, min(next_sample, end) - now)))
        # 3. Stop the load, let what is in flight finish, then the last sample (nothing in flight).
        load.stop.set()
        for thread in clients:
            thread.join(timeout=args.timeout_s)
        time.sleep(args.settle_s)  # Ray's metrics agent reports every few seconds
        samples.append(take_sample(root, started, load, metrics))
    # 4. Compare, report.
    counts = load.counts
    reports, totals, failures = analyse(samples, bounds) if len(samples) >= 2 else ([], {}, ["too short: fewer than two samples after the warm-up"])
    if counts.errors:
        failures.insert(0, f"{counts.errors} request(s) failed, e.g. {counts.error_examples[:3]}")
    if counts.ok == 0:
        failures.insert(0, "no request succeeded")
    result = {
        "url": args.url,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": args.duration_s,
        "warmup_s": args.warmup_s,
        "warmup_requests": args.warmup_requests,
        "concurrency": args.concurrency,
        "requests": {
            "total": counts.total,
            "ok": counts.ok,
            "cached": counts.cached,
            "cancelled": counts.cancelled,
            "errors": counts.errors,
            "error_examples": counts.error_examples,
            "p50_s": round(statistics.median(counts.latencies_s), 3) if counts.latencies_s else None,
        },
        "bounds": asdict(bounds),
        "before_load": [asdict(p) for p in before.processes],
        "processes": [asdict(r) for r in reports],
        "totals": totals,
        "samples": [
            {
                "at_s": round(s.at_s, 1),
                "requests": s.requests,
                "rss_bytes": {p.pid: p.rss_bytes for p in s.processes},
                "fds": {p.pid: p.fds for p in s.processes},
                "threads": {p.pid: p.threads for p in s.processes},
                "object_store_bytes": s.object_store_bytes,
            }
            for s in samples
        ],
        "failures": failures,
        "passed": not failures,
    }
    for line in format_report(result):
        print_line(line)
    return (0 if not failures else 1), result


def format_report(result: dict[str, Any]) -> list[str]:
    r = result["requests"]
    lines = [
        f"soak: {r['total']} requests in {result['duration_s']:g} s at concurrency {result['concurrency']}: "
        f"{r['ok']} ok ({r['cached']} from the cache), {r['cancelled']} cancelled, {r['errors']} failed; p50 {r['p50_s']} s",
        "| process | pid | RSS MiB (baseline -> end) | MiB / 1k req | FDs | FDs / 1k | threads | threads / 1k |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in sorted(result["processes"], key=lambda p: -p["rss_mib"][1]):
        lines.append(
            f"| {p['name']} | {p['pid']} | {p['rss_mib'][0]:.1f} -> {p['rss_mib'][1]:.1f} | {p['rss_mib_per_1k']:+.2f} | "
            f"{p['fds'][0]} -> {p['fds'][1]} | {p['fds_per_1k']:+.2f} | {p['threads'][0]} -> {p['threads'][1]} | {p['threads_per_1k']:+.2f} |"
        )
    totals = result.get("totals") or {}
    if totals:
        store = totals["object_store"]
        fmt = lambda b: "?" if b is None else f"{b / MIB:.1f} MiB"  # noqa: E731
        lines.append(
            f"all processes: RSS {totals['rss_mib'][0]} -> {totals['rss_mib'][1]} MiB; Ray object store "
            f"{fmt(store['start_bytes'])} -> {fmt(store['end_bytes'])}"
        )
    lines.append("soak: PASSED" if result["passed"] else "soak: FAILED: " + "; ".join(result["failures"]))
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--pid", type=int, help="the process that started the server's Ray (its tree is measured)")
    who.add_argument("--container", help="a running container: its processes, seen from this host, are measured")
    p.add_argument(
        "--metrics-url",
        help="Ray's Prometheus endpoint, for the object store (default: found from the metrics agent's command "
        "line; with --container, read inside the container)",
    )
    p.add_argument("--duration-s", type=float, required=True)
    p.add_argument("--warmup-s", type=float, default=30.0, help="load before the baseline sample (default 30)")
    p.add_argument(
        "--warmup-requests", type=int, default=0,
        help="also wait for this many requests before the baseline sample (default 0: time only)",
    )
    p.add_argument("--sample-every-s", type=float, default=10.0)
    p.add_argument("--settle-s", type=float, default=12.0, help="wait after the load before the last sample (default 12)")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"WxH list (default {DEFAULT_SIZES})")
    p.add_argument("--cancel-fraction", type=float, default=0.1)
    p.add_argument("--repeat-fraction", type=float, default=0.3)
    p.add_argument("--timeout-s", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the full result (every sample) here")
    b = p.add_argument_group("bounds (the run fails beyond them)")
    b.add_argument("--max-rss-mib-per-1k", type=float, default=8.0, help="per process, MiB per 1,000 requests (default 8)")
    b.add_argument("--max-rss-growth-mib", type=float, default=256.0, help="all processes, end minus baseline (default 256)")
    b.add_argument("--max-fd-growth", type=int, default=16, help="per process (default 16)")
    b.add_argument("--max-thread-growth", type=int, default=16, help="per process (default 16)")
    b.add_argument("--max-object-store-growth-mib", type=float, default=16.0, help="default 16")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration_s <= args.warmup_s:
        print("soak: --duration-s must be longer than --warmup-s", file=sys.stderr)
        return 2
    try:
        code, result = run(args)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
