"""A/B of kgrec's allocator setting (:func:`kgrec.runtime.tune_allocator`): training epochs
per case with the setting (kgrec's default) and without (``KGREC_MALLOC=default``).

    KGREC_DATA=../shared/data PYTHONPATH=src python benchmarks/speed_allocator.py \\
        --cases cke-ctr-book,mkr-lastfm:5 --rounds 3 [--write-results docs/results.md]

Each run is a fresh process, ``kgrec train PRESET --set train.epochs=N --set
train.threads=1`` through ``kgrec.cli.main()`` (``N`` is 1, or the ``:N`` of a case: a few
epochs for a model whose epoch takes under a second), with every ``MALLOC_*`` variable
removed from its environment; the two settings alternate within a round (the first of a
pair swaps every round) so that a shared machine's load falls on both alike. Per run: the
training seconds per epoch (``metrics.json``'s ``train_seconds`` over its ``epochs``,
validation excluded), the process's user and system CPU seconds and its peak resident size
(``resource.getrusage``; the whole process: loading the data, the epochs, validation and
test), and its resident size once the command has returned (``/proc/self/statm``: what the
process keeps). Before the rounds, one warm-up run per case (a few steps) fills the
preprocessing cache. The ratio is the median of the per-round ratios (without / with).
Prints a markdown table and, last, one JSON line; with ``--write-results`` it replaces the
``speed:allocator`` block of that file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("tuned", "default")  # KGREC_MALLOC values: kgrec's setting, glibc's defaults


def split_case(case: str) -> tuple[str, int]:
    preset, _, epochs = case.partition(":")
    return preset, int(epochs or 1)


def child(case: str, out: str, extra: list[str]) -> None:
    """One training run in this process; prints its figures as one JSON line."""
    import gc
    import resource

    from kgrec.cli import main

    preset, epochs = split_case(case)
    try:
        main(["train", preset, "--out", out, "--quiet", "--set", f"train.epochs={epochs}",
              "--set", "train.threads=1", *[a for s in extra for a in ("--set", s)]])
    except SystemExit as e:
        if e.code:
            raise
    gc.collect()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    statm = Path("/proc/self/statm")
    pages = int(statm.read_text().split()[1]) if statm.is_file() else 0
    print(json.dumps({"train_s": metrics["train_seconds"] / metrics["epochs"],
                      "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
                      "maxrss_mib": usage.ru_maxrss / 1024,
                      "rss_end_mib": pages * os.sysconf("SC_PAGE_SIZE") / 2**20}))


def run_one(preset: str, mode: str, out: Path, extra: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("GLIBC_TUNABLES", None)
    env["KGREC_MALLOC"] = mode
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", preset, str(out), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{preset} ({mode}) failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="cke-ctr-book,mkr-lastfm:5",
                    help="comma-separated PRESET[:EPOCHS] (default 1 epoch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", dest="extra", action="append", default=[],
                    help="extra override key=value for every run")
    ap.add_argument("--write-results", type=Path, default=None)
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: dict[str, dict[str, list[dict]]] = {c: {m: [] for m in MODES} for c in cases}
    with tempfile.TemporaryDirectory(prefix="kgrec-alloc-") as tmp:
        os.environ.setdefault("KGREC_CACHE", str(Path(tmp) / "cache"))
        for case in cases:  # warm-up: preprocessing cache
            run_one(case, "tuned", Path(tmp) / f"warm-{case}",
                    [*args.extra, "train.max_examples={rec: 512}"])
        for r in range(args.rounds):
            for case in cases:
                for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                    res = run_one(case, mode, Path(tmp) / f"{case}-{mode}-{r}", args.extra)
                    runs[case][mode].append(res)
                    print(f"round {r} {case} {mode}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()),
                          flush=True)
    from kgrec.utils import machine_description

    machine = machine_description()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    med = statistics.median
    header = ("| preset (epochs) | s / epoch, kgrec's setting | s / epoch, glibc default | ratio "
              "default / setting (median of rounds) | process sys s (setting / default) | "
              "process user s (setting / default) | peak RSS MiB (setting / default) | RSS MiB "
              "after the command (setting / default) |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    summary = {}
    for case in cases:
        t, d = runs[case]["tuned"], runs[case]["default"]
        ratio = med(b["train_s"] / a["train_s"] for a, b in zip(t, d, strict=True))
        summary[case] = {"ratio": ratio, **{m: runs[case][m] for m in MODES}}

        def pair(key: str, fmt: str = ".1f", t=t, d=d) -> str:
            return f"{med(x[key] for x in t):{fmt}} / {med(x[key] for x in d):{fmt}}"

        preset, epochs = split_case(case)
        lines.append(f"| {preset} ({epochs}) | {med(x['train_s'] for x in t):.2f} | "
                     f"{med(x['train_s'] for x in d):.2f} | {ratio:.2f} | {pair('sys_s')} | "
                     f"{pair('user_s')} | {pair('maxrss_mib', '.0f')} | "
                     f"{pair('rss_end_mib', '.0f')} |")
    table = "\n".join(lines)
    print(table)
    print(json.dumps({"machine": machine, "date": started, "load": load, "cases": summary}))
    if args.write_results is not None:
        from kgrec.reproduce import update_section

        extra = "".join(f" --set {s}" for s in args.extra)
        body = "\n".join([
            "### kgrec's allocator setting: training epochs with and without",
            "",
            f"`KGREC_DATA=../shared/data PYTHONPATH=src python benchmarks/speed_allocator.py "
            f"--cases {','.join(cases)} --rounds {args.rounds}{extra}`; {started}; machine: "
            f"{machine}; load average at the end {load}. N training epochs per run (`kgrec "
            "train PRESET --set train.epochs=N --set train.threads=1`, a fresh process each; "
            "N = 1 for CKE, a few epochs for the sub-second ones), "
            "with kgrec's setting (the default since this block) and with `KGREC_MALLOC=default` "
            f"(glibc's defaults), alternating, {args.rounds} rounds, medians; process figures "
            "from `resource.getrusage` cover the whole process (data loading, the epochs, "
            "validation, test); the last column is the resident size once `kgrec train` has "
            "returned (`/proc/self/statm`). No validation grid (speed only).",
            "",
            table,
        ])
        update_section(args.write_results, "speed:allocator", body)
        print(f"-> {args.write_results}", file=sys.stderr)


if __name__ == "__main__":
    main()
