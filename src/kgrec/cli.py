"""The ``kgrec`` command line: datasets, training, recommendation, explanation."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from kgrec.errors import KGRecError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Knowledge-graph-enhanced recommendation.")
datasets_app = typer.Typer(no_args_is_help=True, help="List, inspect and download datasets.")
app.add_typer(datasets_app, name="datasets")

ConfigArg = Annotated[str, typer.Argument(metavar="CONFIG",
                                          help="preset name (see `kgrec presets`) or YAML file")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data folder (default: "
                                              "$KGREC_DATA, then the user cache)")]


def _compute_command() -> None:
    """Training, tuning and evaluation commands keep freed memory in the process
    (:func:`kgrec.runtime.tune_allocator`; ``KGREC_MALLOC=default`` opts out). ``serve``
    does not call this: a long-lived server should give memory back to the system."""
    from kgrec import runtime

    runtime.tune_allocator()


@datasets_app.command("list")
def datasets_list(data_dir: DataDir = None) -> None:
    """Named datasets: description, source, and whether the data folder holds them."""
    from kgrec.data import embedded
    from kgrec.data.registry import (
        DATASETS,
        _detect_layout,
        dataset_source,
        dataset_status,
        resolve_data_dir,
    )

    for name, spec in DATASETS.items():
        state, folder, missing = dataset_status(name, data_dir)
        where = {"present": f"present ({folder})",
                 "partial": f"partly present ({folder}; missing {', '.join(missing)}): "
                            f"kgrec datasets download {name}",
                 "absent": f"not present: kgrec datasets download {name}"}[state]
        if state != "present" and embedded.available(name):
            where = (f"shipped with kgrec (processed files in {embedded.EMBEDDED_DIR / name}); "
                     f"raw files: kgrec datasets download {name}")
        typer.echo(f"{name:10s} {spec.description} [default layout: {spec.default_layout}]\n"
                   f"{'':10s} source: {dataset_source(spec)}\n{'':10s} {where}")
    root = resolve_data_dir(data_dir)
    known = {spec.folder for spec in DATASETS.values()}
    others = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in known) \
        if root.is_dir() else []
    for folder in others:
        try:
            layout = _detect_layout(folder, None)
        except KGRecError:
            continue
        typer.echo(f"{folder.name:10s} a folder of the data folder ({folder}), {layout} layout")


@datasets_app.command("info")
def datasets_info(
    name: Annotated[str, typer.Argument(metavar="NAME", help="a named dataset or a folder")],
    layout: Annotated[str, typer.Option(help="auto, raw, processed, ktup, kgat, csv or atomic")] = "auto",
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print a dataset's statistics (users, items, interactions, entities, relations, triples)."""
    from kgrec.data import load_dataset

    ds = load_dataset(name, layout, data_dir)
    stats = ds.stats()
    if as_json:
        typer.echo(json.dumps(stats))
        return
    for k, v in stats.items():
        typer.echo(f"{k:14s} {v:,}")
    for note in ("skipped", "duplicates_removed"):  # counted reading policies
        counts = _flat_counts(ds.meta.get(note))
        if any(counts.values()):
            typer.echo(f"{note:14s} " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def _flat_counts(value, prefix: str = "") -> dict[str, int]:
    """``{"ratings": {"train": 1}}`` as ``{"ratings.train": 1}`` (integer leaves only)."""
    if isinstance(value, dict):
        out: dict[str, int] = {}
        for k, v in value.items():
            out.update(_flat_counts(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value} if isinstance(value, int) and prefix else {}


@datasets_app.command("download")
def datasets_download(
    name: Annotated[str, typer.Argument(metavar="NAME", help="a named dataset or a folder")],
    data_dir: DataDir = None,
    base_url: Annotated[str | None, typer.Option(help="mirror replacing every source host")] = None,
    force: bool = False,
) -> None:
    """Download a named dataset from its public sources (checksums verified)."""
    from kgrec.data.registry import download

    folder = download(name, data_dir, base_url=base_url, force=force)
    typer.echo(f"{name}: {folder}")


@datasets_app.command("check")
def datasets_check(
    path: Annotated[str, typer.Argument(metavar="PATH", help="a dataset folder")],
    layout: Annotated[str, typer.Option(help="auto, csv, atomic, kgat, ktup, processed or raw")] = "auto",
    rating_threshold: Annotated[float | None, typer.Option(
        help="a rating at or above it is a positive (csv/atomic)")] = None,
    min_positives: Annotated[int, typer.Option(
        help="report interactions lost to data.min_user_positives=N")] = 0,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Report duplicates, conflicting labels, items without an entity, dangling ids,
    unreached entities and rows lost to filters, with counts and examples (exit 0; 2 only
    when the data cannot be read)."""
    from kgrec.data.check import check_dataset

    report = check_dataset(path, layout, data_dir, rating_threshold, min_positives)
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text())


@datasets_app.command("export")
def datasets_export(
    name_or_path: Annotated[str, typer.Argument(metavar="NAME_OR_PATH", help="a named dataset or a folder")],
    to: Annotated[str, typer.Option("--to", help="csv, atomic (RecBole) or kgat")],
    out: Annotated[Path, typer.Option("--out", help="folder to write into")],
    layout: Annotated[str, typer.Option(help="layout of the input (default: detected)")] = "auto",
    rating_threshold: Annotated[float | None, typer.Option(
        help="a rating at or above it is a positive (csv/atomic input)")] = None,
    force: Annotated[bool, typer.Option(help="replace files already in OUT")] = False,
    data_dir: DataDir = None,
) -> None:
    """Write a dataset (named or a folder) as kgrec CSV, RecBole atomic or KGAT files."""
    from kgrec.data import load_dataset
    from kgrec.data.export import export_dataset

    ds = load_dataset(name_or_path, layout, data_dir, rating_threshold=rating_threshold)
    for p in export_dataset(ds, to, out, overwrite=force):
        typer.echo(str(p))


@app.command("presets")
def presets_list() -> None:
    """The presets shipped with kgrec (run one with `kgrec train NAME`)."""
    from kgrec.presets import describe, list_presets

    for name in list_presets():
        typer.echo(f"{name:20s} {describe(name)}")


@app.command()
def models() -> None:
    """Registered models: the paper each implements and its training tasks."""
    from kgrec.models import MODELS

    width = max((len(cls.paper) for cls in MODELS.values()), default=1)
    name_width = max((len(name) for name in MODELS), default=1)
    for name, cls in sorted(MODELS.items()):
        typer.echo(f"{name:{name_width}s}  {cls.paper or '-':{width}s}  tasks: {', '.join(cls.tasks)}")


@app.command()
def train(
    config: ConfigArg,
    data_dir: DataDir = None,
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/MODEL-DATASET-sSEED)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override key=value (dotted)")] = None,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint.pt if present")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bar or log lines on stderr "
                                        "(OUT/train.log is still written)")] = False,
) -> None:
    """Train CONFIG, select on validation, test once; write OUT/metrics.json.

    Off a terminal, one line per epoch goes to stderr; OUT/train.log and OUT/history.csv
    always get them."""
    from kgrec.config import load_config
    from kgrec.logs import log_to_stderr, summary_line
    from kgrec.presets import resolve_config
    from kgrec.training.experiment import run

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    cfg = load_config(resolve_config(config), overrides)
    out = out or Path("runs") / f"{cfg.model}-{Path(cfg.data.dataset).name}-s{cfg.seed}"
    if quiet:
        log_to_stderr(False)
    _compute_command()
    metrics = run(cfg, out, data_dir, resume=resume, progress=None if not quiet else False)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return
    typer.echo(summary_line(metrics, out))


@app.command()
def recommend(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a finished run folder")],
    user: Annotated[str, typer.Option(help="user id (original id if the dataset has them)")],
    k: Annotated[int, typer.Option("-k", help="number of items")] = 10,
    explain: Annotated[bool, typer.Option(help="explain each recommendation")] = False,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Top-K items for a user, excluding the user's training and validation positives."""
    from kgrec.recommend import recommend as do_recommend

    recs = do_recommend(run_dir, user, k, explain=explain, data_dir=data_dir)
    if as_json:
        typer.echo(json.dumps(recs, indent=2))
        return
    notes = {r["explanation"]["note"] for r in recs if r.get("explanation", {}).get("note")}
    for note in sorted(notes):  # said once, not per item
        typer.echo(f"note: {note}")
    for r in recs:
        name = f" {r['name']}" if r.get("name") and r["name"] != r["item"] else ""
        typer.echo(f"{r['rank']:3d}. item {r['item']}{name} (index {r['item_index']}) "
                   f"score {r['score']:.4g}")
        for line in r.get("explanation", {}).get("lines", []):
            typer.echo(f"       {line}")


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a finished run folder")],
    user: Annotated[str, typer.Option(help="user id")],
    item: Annotated[str, typer.Option(help="item id")],
    plot: Annotated[Path | None, typer.Option(help="write the preference heatmap (PNG)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Explain one user-item score (HKRM: preference vs attribute-importance distributions)."""
    from kgrec.recommend import explain_pair, short_name

    if plot is not None:
        from kgrec.plots import check_plot_path

        check_plot_path(plot)
    exp, dataset = explain_pair(run_dir, user, item, data_dir)
    if plot is not None:
        from kgrec.plots import plot_preference_heatmap

        if "user_distribution" not in exp:
            raise KGRecError("--plot draws HKRM's preference heatmap; this model's explanation "
                             "has no distributions")
        names = [short_name(n) for n in exp.get("field_names") or map(str, exp["fields"])]
        plot_preference_heatmap(exp["user_distribution"], exp["item_distribution"], names, plot)
        typer.echo(f"heatmap -> {plot}")
    typer.echo(json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in exp.items()},
                          indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


@app.command()
def reproduce(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="the model whose presets to run")],
    seeds: Annotated[int | None, typer.Option(
        help="seeds per dataset (default 3; with --study, the study's: 3 for mkr variants, else 1)")] = None,
    datasets: Annotated[str, typer.Option(help="comma-separated datasets")] = "lastfm,book",
    out: Annotated[Path, typer.Option(help="where runs go")] = Path("runs/reproduce"),
    write_results: Annotated[Path | None, typer.Option(
        help="also write the table into this markdown file (e.g. docs/results.md)")] = None,
    data_dir: DataDir = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override key=value (dotted)")] = None,
    key: Annotated[str | None, typer.Option(help="results block (default reproduce:MODEL)")] = None,
    configs: Annotated[Path | None, typer.Option(
        help="folder of MODEL-DATASET.yaml presets (default: the shipped presets)")] = None,
    study: Annotated[str | None, typer.Option(
        help="run one of the paper's experiments instead (mkr: variants, topk, sparsity, kge, "
             "kg-size, t, dim); writes OUT/MODEL-STUDY.md and .png")] = None,
    values: Annotated[str | None, typer.Option(
        help="with --study: comma-separated values of its sweep (default: the paper's grid)")] = None,
    budget: Annotated[int | None, typer.Option(
        min=1, help="ktup: training examples per task of every run (default 500,000)")] = None,
    rows: Annotated[str | None, typer.Option(
        help="ktup: comma-separated rows of the paper's tables (e.g. BPRMF,'KTUP (soft)'; "
             "default every row kgrec has)")] = None,
    warm_start: Annotated[bool | None, typer.Option(
        "--warm-start/--no-warm-start", help="ktup: start the joint models (and TUP, TransH, "
             "TransR) from the selected runs of their basic models, KTUP Section 6.3 (default: "
             "on)")] = None,
) -> None:
    """Run a model's presets over seeds and print the paper-vs-measured table; with
    --study, one of the paper's experiments (table and figure, ours beside the paper's);
    ktup: the KTUP paper's Tables 2-4 over every row kgrec has (kgrec.studies.ktup)."""
    from kgrec.reproduce import reproduce as do_reproduce

    _compute_command()
    extra = {"configs": configs} if configs is not None else {}
    names = [d for d in datasets.split(",") if d]
    if study is not None:
        from kgrec.studies import run_study, studies_of

        known = studies_of(model)
        if study not in known:
            raise typer.BadParameter(f"{model!r} has no study {study!r}; its studies: "
                                     f"{', '.join(known) or 'none'}", param_hint="'--study'")
        try:
            grid = None if values is None else [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise typer.BadParameter(f"{values!r} is not a comma-separated list of numbers",
                                     param_hint="'--values'") from None
        table = run_study(model, study, names, seeds, out, write_results, data_dir,
                          overrides=set_, key=key, values=grid, **extra)
    else:
        table = do_reproduce(model, names, 3 if seeds is None else seeds, out, write_results,
                             data_dir, overrides=set_, key=key, budget=budget, rows=rows,
                             warm_start=warm_start, **extra)
    typer.echo(table)
    if write_results is not None:
        typer.echo(f"table -> {write_results}", err=True)


@app.command()
def serve(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR",
                                                   help="run folders; the first is the default run")],
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    token: Annotated[str | None, typer.Option(envvar="KGREC_TOKEN", help="bearer token the API "
                                              "requires (default $KGREC_TOKEN; none: open)")] = None,
    threads: Annotated[int, typer.Option(help="torch intra-op threads")] = 1,
    max_body: Annotated[int, typer.Option(help="largest request body in bytes (413 above)")] = 1 << 20,
    max_batch: Annotated[int, typer.Option(help="most users or pairs in one request (413 above)")] = 1000,
    data_dir: DataDir = None,
) -> None:
    """Serve runs over HTTP: recommendations, scores, explanations, similar items, KG
    completion (API docs at /docs) and a page at /."""
    import time

    t0 = time.perf_counter()
    import torch
    import uvicorn

    from kgrec.serve.app import create_app

    torch.set_num_threads(threads)
    web = create_app(run_dirs, token=token or None, data_dir=data_dir, max_body=max_body,
                     max_batch=max_batch)
    names = ", ".join(e.name for e in web.state.engines)
    typer.echo(f"kgrec serve: {names} loaded in {time.perf_counter() - t0:.1f}s; "
               f"http://{host}:{port}/ (API docs: /docs)", err=True)
    try:
        uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)
    except OSError as e:  # port in use, address not available
        raise KGRecError(f"--host {host} --port {port}: {e.strerror or e}") from None


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a finished run folder")],
    embeddings: Annotated[Path, typer.Option(help="NumPy .npz file to write")],
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
    data_dir: DataDir = None,
) -> None:
    """Write a run's user and item representations (and KG embeddings) to a .npz file for
    an external ANN index; with scoring == "dot", score = users @ items.T exactly."""
    import io

    import numpy as np

    from kgrec.data.registry import atomic_write_bytes
    from kgrec.serve.engine import Engine

    if embeddings.exists() and not force:
        raise KGRecError(f"{embeddings}: exists; pass --force to overwrite")
    arrays = Engine.load(run_dir, data_dir).embeddings()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(embeddings, buf.getvalue())
    shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items() if v.ndim == 2)
    typer.echo(f"{embeddings}: {shapes} (scoring: {arrays['scoring']})")


@app.command()
def tune(
    config: ConfigArg,
    space: Annotated[Path | None, typer.Option(help="search space YAML (default: the shipped "
                                               "space named like CONFIG)")] = None,
    trials: Annotated[int, typer.Option(help="complete or pruned trials the study reaches")] = 20,
    storage: Annotated[str, typer.Option(help="Optuna storage URL")] = "sqlite:///study.db",
    study: Annotated[str | None, typer.Option(help="study name (default: CONFIG's name)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default runs/tune-STUDY)")] = None,
    seed: Annotated[int, typer.Option(help="TPE sampler seed")] = 0,
    prune: Annotated[bool, typer.Option(help="median pruning on per-epoch validation")] = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override key=value (dotted)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Optuna search on validation (the test split is never read); resumable, parallel-safe;
    writes the best preset, a trials table and plots."""
    from kgrec.tuning import tune as do_tune

    _compute_command()
    name = study or Path(config).name.removesuffix(".yaml")
    summary = do_tune(config, space, trials, storage, name, out, seed, list(set_ or []), data_dir,
                      pruning=prune, log=lambda m: typer.echo(m, err=True))
    if "preset" in summary:
        typer.echo(f"study {name}: {summary['complete']} complete of {summary['trials']} trials; "
                   f"best trial {summary['best_trial']} value {summary['best_value']:.4f} "
                   f"-> {summary['preset']}")
    else:
        typer.echo(f"study {name}: no complete trial ({summary['trials']} trials)")


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Exception types of command-line usage errors: typer's own (typer >= 0.2x vendors
    click; its ``ClickException`` derives from ``typer.TyperException``) and click's where
    an older typer still uses click."""
    types: list[type[BaseException]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click
    except ImportError:
        pass
    else:
        types.append(click.ClickException)
    return tuple(types)


def _exit_code(argv: list[str] | None) -> int:
    try:
        code = app(args=argv, prog_name="kgrec", standalone_mode=False)
    except KGRecError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except typer.Exit as e:
        return e.exit_code
    except _usage_errors() as e:
        if hasattr(e, "show"):
            e.show()
        else:
            typer.echo(f"Error: {e}", err=True)
        return getattr(e, "exit_code", 2)
    # typer returns the exit code of ``typer.Exit`` and of Ctrl-C (130) in this mode
    code = code if isinstance(code, int) else 0
    if code == 130:
        typer.echo("interrupted", err=True)
    return code


def main(argv: list[str] | None = None) -> None:
    """The ``kgrec`` entry point: exit 2 with the usage and the reason on a usage error,
    ``error: WHERE: what`` on bad input (:class:`KGRecError`), 130 on Ctrl-C; never a
    traceback for either. Off a terminal, log lines go to stderr as they happen."""
    from kgrec.logs import log_to_stderr, stderr_is_terminal

    log_to_stderr(not stderr_is_terminal())  # a terminal gets progress bars instead
    try:
        code = _exit_code(argv)
    finally:
        log_to_stderr(False)
    sys.exit(code)


if __name__ == "__main__":
    main()
