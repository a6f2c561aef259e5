"""Bounded load test of ``kgrec serve`` on loopback (issue 13's targets).

The script starts ``kgrec serve`` itself on a free 127.0.0.1 port (pinned to one core,
one torch thread), measures, and stops it. Phases, each with a bounded request count and
a per-request timeout (a request that times out or whose connection fails is *dropped*):

1. start time: ``kgrec serve RUN`` with one Last.FM run (MKR) until ``/health`` answers,
   process start to first answer, ``--starts`` times;
2. concurrency 1: ``--seq`` sequential ``GET /recommend?k=10`` per run (MKR, BPRMF, JNSKR,
   KTUP on Last.FM), p50/p99 client-side latency;
3. burst: ``--burst`` (1,000) ``GET /recommend?k=10`` sent at once on as many connections,
   per run: throughput, p50/p99, 5xx, other errors, dropped;
4. mixed: ``--mixed`` requests over ``--concurrency`` connections across the runs and
   endpoints (recommend, recommend with explanations, batch recommend, score, explain,
   similar, item neighbours, KG completion).

Runs come from ``--runs-dir`` (``MODEL-lastfm`` folders); ``--train`` trains missing ones
for ``--epochs`` epochs (latency does not depend on quality). Results are printed; with
``--write-results`` they also replace the ``serve-load`` block of docs/results.md, with
the machine (CPU model, cores, torch version, load average) and date. ``--starts-only``
runs phase 1 alone (only the MKR run is needed); with ``--write-results`` it replaces only
the block's server-start paragraph, saying its own command and date.

    KGREC_DATA=../shared/data python benchmarks/serve_load.py --train --write-results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = ("mkr", "bprmf", "jnskr", "ktup")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(core: int):
    def fn() -> None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {core})
    return fn


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; ``nan`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def start(run_dirs: list[Path], port: int, core: int, timeout: float = 300,
          src: Path = REPO / "src") -> tuple[subprocess.Popen, float]:
    """``kgrec serve`` (from the source tree ``src``) on 127.0.0.1:port pinned to ``core``;
    returns (process, start seconds); ``process.cpu_seconds`` is its CPU time until it
    answered."""
    cmd = [sys.executable, "-m", "kgrec.cli", "serve", *map(str, run_dirs), "--port", str(port),
           "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(src) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("KGREC_TOKEN", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=pin(core))
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"kgrec serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                seconds = time.perf_counter() - t0
                proc.cpu_seconds = cpu_seconds(proc.pid)
                return proc, seconds
        except httpx.TransportError:
            time.sleep(0.02)
    stop(proc)
    raise SystemExit(f"kgrec serve did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(lat: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(lat) * 1000, q)) if lat else float("nan")


def ensure_runs(args) -> dict[str, Path]:
    runs = {}
    for m in (MODELS[:1] if args.starts_only else MODELS):
        out = args.runs_dir / f"{m}-lastfm"
        if not (out / "model.pt").is_file():
            if not args.train:
                raise SystemExit(f"{out}: no trained run; pass --train to train one "
                                 f"({args.epochs} epoch(s) of configs/{m}-lastfm.yaml)")
            preset = next(p for p in (REPO / "src/kgrec/presets" / f"{m}-lastfm.yaml",
                                      REPO / "configs" / f"{m}-lastfm.yaml") if p.is_file())
            subprocess.run([sys.executable, "-m", "kgrec.cli", "train", str(preset), "--out", str(out),
                            "--set", f"train.epochs={args.epochs}", "--set", "train.threads=1",
                            "--quiet"], check=True,
                           env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        runs[m] = out
    return runs


class Conn:
    """A minimal HTTP/1.1 keep-alive client connection (asyncio streams): the load
    generator must cost far less than the server, which httpx at 1,000 connections on a
    2-core machine does not."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout, self.reader, self.writer = port, timeout, None, None

    async def request(self, method: str, path: str, params=None, body=None):
        """``(status, headers, body)``; raises ``OSError``/``asyncio.TimeoutError`` when
        the connection fails or the answer is late."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), self.timeout)
        target = path + ("?" + urlencode(params) if params else "")
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
                + ("Content-Type: application/json\r\n" if body is not None else "") + "\r\n")
        self.writer.write(head.encode() + data)
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.timeout)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        content = await asyncio.wait_for(
            self.reader.readexactly(int(headers.get("content-length", 0))), self.timeout)
        return status, headers, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _fire(conn: Conn, method: str, path: str, params=None, body=None):
    t0 = time.perf_counter()
    try:
        status, _, _ = await conn.request(method, path, params, body)
        return f"{method} {path}", status, time.perf_counter() - t0
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        conn.close()
        return f"{method} {path}", None, time.perf_counter() - t0


async def sequential(port: int, run: str, users: list[str], n: int, rng: random.Random) -> dict:
    lat, app, errors = [], [], 0
    conn = Conn(port, 30)
    for _ in range(20):  # warm-up
        await conn.request("GET", "/recommend", {"user": rng.choice(users), "k": 10, "run": run})
    for _ in range(n):
        t0 = time.perf_counter()
        status, headers, _ = await conn.request(
            "GET", "/recommend", {"user": rng.choice(users), "k": 10, "run": run})
        lat.append(time.perf_counter() - t0)
        app.append(float(headers.get("server-timing", "dur=nan").split("dur=")[1]) / 1000)
        errors += status != 200
    conn.close()
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "app_p50": pct(app, 50),
            "app_p99": pct(app, 99), "errors": errors, "n": n}


def summarise(results, wall: float) -> dict:
    lat = [t for _, s, t in results if s is not None]
    codes = [s for _, s, _ in results]
    return {"n": len(results), "wall": wall, "rps": len(results) / wall,
            "p50": pct(lat, 50), "p99": pct(lat, 99),
            "5xx": sum(1 for s in codes if s is not None and s >= 500),
            "other_errors": sum(1 for s in codes if s is not None and 400 <= s < 500),
            "dropped": sum(1 for s in codes if s is None)}


async def burst(port: int, run: str, users: list[str], n: int, rng: random.Random,
                timeout: float) -> dict:
    """``n`` requests sent at once, each on its own connection."""
    conns = [Conn(port, timeout) for _ in range(n)]
    t0 = time.perf_counter()
    results = await asyncio.gather(*[
        _fire(c, "GET", "/recommend", {"user": rng.choice(users), "k": 10, "run": run})
        for c in conns])
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    return summarise(results, wall)


def mixed_request(rng: random.Random, runs: list[str], users: dict, items: dict, rels: dict):
    run = rng.choice(runs)
    u, i = rng.choice(users[run]), rng.choice(items[run])
    x = rng.random()
    if x < 0.40:
        return "GET", "/recommend", {"user": u, "k": 10, "run": run}, None
    if x < 0.50:
        return "GET", "/recommend", {"user": u, "k": 10, "run": run, "explain": "true"}, None
    if x < 0.55:
        return "POST", "/recommend", {"run": run}, {"users": rng.sample(users[run], 8), "k": 10}
    if x < 0.70:
        pairs = [{"user": rng.choice(users[run]), "item": rng.choice(items[run])} for _ in range(10)]
        return "POST", "/score", {"run": run}, {"pairs": pairs}
    if x < 0.80:
        return "GET", "/explain", {"user": u, "item": i, "run": run}, None
    if x < 0.90:
        return "GET", "/similar", {"item": i, "k": 10, "run": run}, None
    if x < 0.95 or not rels:
        return "GET", "/item", {"item": i, "run": run}, None
    kg_run = rng.choice(sorted(rels))
    heads, rel = rels[kg_run]
    return "GET", "/complete", {"head": rng.choice(heads), "relation": rng.choice(rel),
                                "k": 10, "run": kg_run}, None


async def mixed(port: int, n: int, concurrency: int, rng: random.Random, runs, users, items, rels,
                timeout: float) -> tuple[dict, dict]:
    reqs = [mixed_request(rng, runs, users, items, rels) for _ in range(n)]
    queue = list(reversed(reqs))
    results = []

    async def worker():
        conn = Conn(port, timeout)
        while queue:
            method, path, params, body = queue.pop()
            results.append(await _fire(conn, method, path, params, body))
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    wall = time.perf_counter() - t0
    per = {}
    for path in sorted({p for p, _, _ in results}):
        per[path] = summarise([r for r in results if r[0] == path], wall)
    return summarise(results, wall), per


def machine() -> str:
    """The machine (read before the client moves off the server's core)."""
    from kgrec.utils import machine_description

    return f"{machine_description()}, Python {platform.python_version()}"


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


START = "Server start with the Last.FM MKR run (process start to first `/health` answer"


def write_start_line(results: Path, line: str, host: str) -> None:
    """Replace the server-start paragraph of the ``serve-load`` block (``--starts-only``)."""
    import re

    from kgrec.reproduce import update_section

    cmd = "python benchmarks/serve_load.py " + " ".join(sys.argv[1:])
    date = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    body = re.search(r"<!-- serve-load -->\n(.*?)\n<!-- /serve-load -->", results.read_text(), re.S)
    if body is None or START not in body.group(1):
        raise SystemExit(f"{results}: no serve-load block with a server-start paragraph")
    new = (f"{START}; re-measured alone by `KGREC_DATA=../shared/data {cmd.strip()}`, {date}, "
           f"{host}, load average at the end {load_average()}): {line}")
    text = "\n".join(new if p.startswith(START) else p for p in body.group(1).split("\n"))
    update_section(results, "serve-load", text)
    print(f"-> {results}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "serve-bench")
    ap.add_argument("--train", action="store_true", help="train missing runs")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--seq", type=int, default=500, help="sequential requests per run")
    ap.add_argument("--burst", type=int, default=1000, help="requests sent at once per run")
    ap.add_argument("--mixed", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-results", action="store_true",
                    help="replace the serve-load block of --results")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "results.md")
    ap.add_argument("--starts-only", action="store_true", help="measure the server start only")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="with --starts-only: also start the server from this other source tree "
                         "(e.g. an older commit's src/), alternating with this checkout's")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    runs = ensure_runs(args)
    host = machine()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    server_core = cores[0]
    if hasattr(os, "sched_setaffinity") and len(cores) > 1:
        os.sched_setaffinity(0, set(cores[1:]))  # the client off the server's core

    starts, cpu, loads = [], [], []
    base: dict[str, list[float]] = {"wall": [], "cpu": [], "load": []}
    for _ in range(args.starts):
        for src in ([args.baseline_src] if args.starts_only and args.baseline_src else []):
            port = free_port()
            proc, seconds = start([runs["mkr"]], port, server_core, src=src)
            base["load"].append(httpx.get(f"http://127.0.0.1:{port}/models")
                                .json()["runs"][0]["load_seconds"])
            stop(proc)
            base["wall"].append(seconds)
            base["cpu"].append(proc.cpu_seconds)
        port = free_port()
        proc, seconds = start([runs["mkr"]], port, server_core)
        loads.append(httpx.get(f"http://127.0.0.1:{port}/models").json()["runs"][0]["load_seconds"])
        stop(proc)
        starts.append(seconds)
        cpu.append(proc.cpu_seconds)
    if base["wall"]:
        print(f"baseline ({args.baseline_src}): " + ", ".join(f"{x:.2f}" for x in base["wall"])
              + " s wall, " + ", ".join(f"{x:.2f}" for x in base["cpu"]) + " s CPU (loading the "
              "run: " + ", ".join(f"{x:.2f}" for x in base["load"]) + " s)", flush=True)
    print(f"start with the Last.FM MKR run: {', '.join(f'{s:.2f}' for s in starts)} s wall, "
          f"{', '.join(f'{s:.2f}' for s in cpu)} s CPU (loading the run: "
          f"{', '.join(f'{s:.2f}' for s in loads)} s)", flush=True)
    start_line = (f"{', '.join(f'{s:.2f}' for s in starts)} s wall, of which loading the run "
                  f"(checkpoint, data, cached representations) {', '.join(f'{s:.2f}' for s in loads)}"
                  f" s; the server process's CPU time until then {', '.join(f'{s:.2f}' for s in cpu)}"
                  " s (target < 3 s).")
    if args.starts_only:
        if args.write_results:
            write_start_line(args.results, start_line, host)
        return

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, _ = start(list(runs.values()), port, server_core)
    try:
        info = {m["run"]: m for m in httpx.get(f"{base}/models", timeout=30).json()["runs"]}
        names = list(info)
        users = {r: httpx.get(f"{base}/users", params={"run": r, "limit": 10000}).json()["users"]
                 for r in names}
        listed = {r: httpx.get(f"{base}/items", params={"run": r, "limit": 100_000}).json()["items"]
                  for r in names}
        items = {r: [x["item"] for x in listed[r]] for r in names}
        rels = {r: ([x["entity"] for x in listed[r] if x["entity"] is not None],
                    info[r]["relation_ids"])
                for r in names if info[r]["completes"]}
        seq = {}
        for model, path in runs.items():
            seq[model] = s = asyncio.run(sequential(port, path.name, users[path.name], args.seq, rng))
            print(f"concurrency 1, {model}: p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms (in the "
                  f"app: {s['app_p50']:.2f}, {s['app_p99']:.2f}), errors {s['errors']}/{s['n']}",
                  flush=True)
        bursts = {}
        for model, path in runs.items():
            cpu0 = cpu_seconds(proc.pid)
            bursts[model] = b = asyncio.run(burst(port, path.name, users[path.name], args.burst,
                                                  rng, args.timeout))
            b["cpu_ms"] = (cpu_seconds(proc.pid) - cpu0) * 1000 / b["n"]
            print(f"burst of {b['n']}, {model}: {b['rps']:.0f} req/s, p50 {b['p50']:.0f} ms, "
                  f"p99 {b['p99']:.0f} ms, 5xx {b['5xx']}, other errors {b['other_errors']}, "
                  f"dropped {b['dropped']}, server CPU {b['cpu_ms']:.2f} ms/request", flush=True)
        cpu0 = cpu_seconds(proc.pid)
        mix, per = asyncio.run(mixed(port, args.mixed, args.concurrency, rng, names, users, items,
                                     rels, args.timeout))
        mix["cpu_ms"] = (cpu_seconds(proc.pid) - cpu0) * 1000 / mix["n"]
        print(f"mixed {mix['n']} at concurrency {args.concurrency}: {mix['rps']:.0f} req/s, "
              f"p50 {mix['p50']:.1f} ms, p99 {mix['p99']:.1f} ms, 5xx {mix['5xx']}, "
              f"other errors {mix['other_errors']}, dropped {mix['dropped']}, server CPU "
              f"{mix['cpu_ms']:.2f} ms/request", flush=True)
    finally:
        stop(proc)

    if args.write_results:
        from kgrec.reproduce import update_section

        cmd = "python benchmarks/serve_load.py " + " ".join(sys.argv[1:])
        date = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
        lines = [
            "### `kgrec serve` load test (loopback)",
            "",
            f"Command: `KGREC_DATA=../shared/data {cmd.strip()}`; {date};"
            f" machine: {host}, load average at the end {load_average()}. Server: `kgrec serve` "
            "with the four Last.FM runs "
            f"({args.epochs} training epoch(s) each; latency does not depend on quality), pinned to "
            "one core, one torch thread; the client (asyncio streams, HTTP/1.1) on the other core. "
            "Latencies in ms, "
            "client-side (request sent to answer read) and, for concurrency 1, in the app (its "
            "`Server-Timing` header: request received to answer started).",
            "",
            f"{START}): {start_line}",
            "",
            f"| model | concurrency 1: p50 | p99 (target) | p50 / p99 in the app | {args.burst} at once:"
            " req/s | p50 | p99 | 5xx | 4xx | dropped | server CPU ms/request |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for model in runs:
            s, b = seq[model], bursts[model]
            target = "< 50" if model == "ktup" else "< 10"
            lines.append(f"| {model.upper()} | {s['p50']:.2f} | {s['p99']:.2f} ({target}) | "
                         f"{s['app_p50']:.2f} / {s['app_p99']:.2f} | "
                         f"{b['rps']:.0f} | {b['p50']:.0f} | {b['p99']:.0f} | {b['5xx']} | "
                         f"{b['other_errors']} | {b['dropped']} | {b['cpu_ms']:.2f} |")
        lines += ["", f"Mixed workload: {mix['n']} requests over {args.concurrency} connections, "
                  f"across the four runs: {mix['rps']:.0f} req/s, p50 {mix['p50']:.1f} ms, p99 "
                  f"{mix['p99']:.1f} ms, 5xx {mix['5xx']}, 4xx {mix['other_errors']}, dropped "
                  f"{mix['dropped']}; server CPU {mix['cpu_ms']:.2f} ms/request.", "",
                  "| endpoint | requests | p50 | p99 | 5xx | 4xx | dropped |",
                  "|---|---|---|---|---|---|---|"]
        for path, s in per.items():
            lines.append(f"| {path} | {s['n']} | {s['p50']:.1f} | {s['p99']:.1f} | {s['5xx']} | "
                         f"{s['other_errors']} | {s['dropped']} |")
        update_section(args.results, "serve-load", "\n".join(lines))
        print(f"-> {args.results}")


if __name__ == "__main__":
    main()
