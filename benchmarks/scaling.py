"""Data-parallel scaling: training samples per second with 1 and 2 processes (torchrun).

    KGREC_DATA=../shared/data python benchmarks/scaling.py [--cases mkr-lastfm,ktup-lastfm]
        [--procs 1,2] [--epochs 3] [--device cpu] [--write-results]

For each case and process count, ``torchrun --nproc-per-node N`` runs this file as a worker:
it builds the preset's model and samplers (``train.batch_size`` is the global batch, each
rank trains on its slice), wraps the model in DDP through kgrec's trainer, trains one
warm-up epoch and then times ``--epochs`` epochs (barriers around them). Samples/s counts
the main task's training rows of the global batches per second of wall clock, evaluation
excluded. Each process uses one intra-op thread. Prints a markdown table; with
``--write-results`` it also replaces the ``speed:scaling`` block of docs/results.md, with
the machine line read from this machine (CPU model, cores, load average, torch, date).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def preset(name: str) -> Path:
    for p in (REPO / "src" / "kgrec" / "presets" / f"{name}.yaml", REPO / "configs" / f"{name}.yaml"):
        if p.is_file():
            return p
    raise SystemExit(f"no preset {name}")


def worker(case: str, epochs: int, device: str, out: Path) -> None:
    import torch

    from kgrec.config import load_config
    from kgrec.data.samplers import make_sampler
    from kgrec.training import distributed as distr
    from kgrec.training.experiment import _device, build_model, check_schedule, make_optimizers, prepare_data
    from kgrec.training.trainer import Trainer

    cfg = load_config(preset(case), ["train.threads=1"])
    torch.set_num_threads(1)
    dev, _ = distr.init_from_env(_device(device))
    dataset, split = prepare_data(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, dataset, split).to(dev)
    samplers = {t: make_sampler(model.task_samplers[t], dataset, split,
                                cfg.train.for_task(cfg.train.batch_size, t),
                                **{**model.sampler_defaults(t), **cfg.train.sampler_options.get(t, {})})
                for t in model.tasks}
    trainer = Trainer(model, samplers, make_optimizers(cfg, model), check_schedule(cfg, model),
                      validate=dict, monitor="x", epochs=epochs + 1, patience=0, progress=False,
                      joint=cfg.train.joint, kge_interval=cfg.train.kge_interval)
    trainer._wrap()
    trainer.train_epoch(0)  # warm-up
    distr.barrier()
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        trainer.train_epoch(e)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    distr.barrier()
    seconds = time.perf_counter() - t0
    main = samplers[model.tasks[0]]
    if distr.is_main():
        out.write_text(json.dumps({"case": case, "procs": distr.world_size(), "device": str(dev.type),
                                   "seconds": seconds, "samples": main.n * epochs,
                                   "batch": main.batch_size, "steps": len(main) * epochs}))
    distr.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores (load average 1/5/15 min at the end: {load}), "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d', time.gmtime())}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="mkr-lastfm,ktup-lastfm")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--write-results", action="store_true",
                    help="replace the speed:scaling block of docs/results.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.epochs, args.device, args.out)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            for n in (int(p) for p in args.procs.split(",")):
                out = Path(tmp) / f"{case}-{n}.json"
                cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
                       "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
                       __file__, "--worker", case, "--epochs", str(args.epochs),
                       "--device", args.device, "--out", str(out)]
                subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                r = json.loads(out.read_text())
                rows.append(r)
                print(f"{case} x{n}: {r['samples'] / r['seconds']:.0f} samples/s", flush=True)
    base = {r["case"]: r["samples"] / r["seconds"] for r in rows if r["procs"] == 1}
    lines = ["| case | processes | device | global batch | steps | seconds | samples/s | vs 1 process |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = r["samples"] / r["seconds"]
        rel = f"{rate / base[r['case']]:.2f}x" if r["case"] in base else "-"
        lines.append(f"| {r['case']} | {r['procs']} | {r['device']} | {r['batch']} | {r['steps']} | "
                     f"{r['seconds']:.2f} | {rate:,.0f} | {rel} |")
    table = "\n".join(lines)
    print(table)
    if args.write_results:
        from kgrec.reproduce import update_section

        cmd = " ".join(["python benchmarks/scaling.py", *sys.argv[1:]])
        body = (f"### Data-parallel scaling (issue 14)\n\n`KGREC_DATA=../shared/data {cmd}`; machine: "
                f"{machine()}. torchrun, gloo on CPU, one intra-op thread per process, "
                f"{args.epochs} timed epochs after one warm-up epoch, evaluation excluded; "
                f"`train.batch_size` is the global batch.\n\n{table}\n")
        update_section(REPO / "docs" / "results.md", "speed:scaling", body)
        print("-> docs/results.md")


if __name__ == "__main__":
    main()
