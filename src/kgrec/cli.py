"""The ``kgrec`` command line: datasets, training, recommendation, explanation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kgrec.errors import KGRecError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Knowledge-graph-enhanced recommendation.")
datasets_app = typer.Typer(no_args_is_help=True, help="List, inspect and download datasets.")
app.add_typer(datasets_app, name="datasets")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data folder (default: "
                                              "$KGREC_DATA, then the user cache)")]


@datasets_app.command("list")
def datasets_list() -> None:
    """Named datasets and their sources."""
    from kgrec.data.registry import DATASETS

    for name, spec in DATASETS.items():
        typer.echo(f"{name:10s} {spec.description} [default layout: {spec.default_layout}]")


@datasets_app.command("info")
def datasets_info(
    name: str,
    layout: Annotated[str, typer.Option(help="auto, raw, processed, ktup or kgat")] = "auto",
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
        if any(ds.meta.get(note, {}).values()):
            typer.echo(f"{note:14s} " + ", ".join(f"{k} {v:,}" for k, v in ds.meta[note].items()))


@datasets_app.command("download")
def datasets_download(
    name: str,
    data_dir: DataDir = None,
    base_url: Annotated[str | None, typer.Option(help="mirror replacing every source host")] = None,
    force: bool = False,
) -> None:
    """Download a named dataset from its public sources (checksums verified)."""
    from kgrec.data.registry import download

    folder = download(name, data_dir, base_url=base_url, force=force)
    typer.echo(f"{name}: {folder}")


@app.command()
def train(
    config: Path,
    data_dir: DataDir = None,
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/MODEL-DATASET-sSEED)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override key=value (dotted)")] = None,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint.pt if present")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Train CONFIG, select on validation, test once; write OUT/metrics.json."""
    from kgrec.config import load_config
    from kgrec.training.experiment import run

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    cfg = load_config(config, overrides)
    out = out or Path("runs") / f"{cfg.model}-{Path(cfg.data.dataset).name}-s{cfg.seed}"
    metrics = run(cfg, out, data_dir, resume=resume, progress=None if not quiet else False)
    test = metrics["test"]
    parts = [f"{k}={v:.4f}" for k, v in test.items()]
    parts += [f"{k}={v:.4f}" for k, v in metrics.get("topk", {}).items() if k.endswith("@10")]
    typer.echo(f"{cfg.model} on {cfg.data.dataset} (seed {cfg.seed}): test " + " ".join(parts)
               + f" | epochs {metrics['epochs']} (best {metrics['best_epoch']}), "
               f"{metrics['train_seconds']:.1f}s training -> {out / 'metrics.json'}")


@app.command()
def recommend(
    run_dir: Path,
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
    for r in recs:
        typer.echo(f"{r['rank']:3d}. item {r['item']} (id {r['item_index']}) score {r['score']:.4f}")
        for line in r.get("explanation", {}).get("lines", []):
            typer.echo(f"       {line}")


@app.command()
def explain(
    run_dir: Path,
    user: Annotated[str, typer.Option(help="user id")],
    item: Annotated[str, typer.Option(help="item id")],
    plot: Annotated[Path | None, typer.Option(help="write the preference heatmap (PNG)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Explain one user-item score (HKRM: preference vs attribute-importance distributions)."""
    from kgrec.recommend import explain_pair

    if plot is not None:
        from kgrec.plots import check_plot_path

        check_plot_path(plot)
    exp, dataset = explain_pair(run_dir, user, item, data_dir)
    if plot is not None:
        from kgrec.plots import plot_preference_heatmap

        if "fields" not in exp:
            raise KGRecError("--plot draws HKRM's preference heatmap; this model's explanation "
                             "has no preference distributions")

        names = [dataset.relation_names[f] if dataset.relation_names else f"relation {f}"
                 for f in exp["fields"]]
        plot_preference_heatmap(exp["user_distribution"], exp["item_distribution"], names, plot)
        typer.echo(f"heatmap -> {plot}")
    typer.echo(json.dumps({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in exp.items()},
                          indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


@app.command()
def reproduce(
    model: str,
    seeds: Annotated[int, typer.Option(help="seeds per dataset")] = 3,
    datasets: Annotated[str, typer.Option(help="comma-separated datasets")] = "lastfm,book",
    out: Annotated[Path, typer.Option(help="where runs go")] = Path("runs/reproduce"),
    results: Annotated[Path, typer.Option(help="markdown file to update")] = Path("docs/results.md"),
    data_dir: DataDir = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override key=value (dotted)")] = None,
    key: Annotated[str | None, typer.Option(help="results block (default reproduce:MODEL)")] = None,
) -> None:
    """Run a model's presets over seeds and write paper-vs-measured tables."""
    from kgrec.reproduce import reproduce as do_reproduce

    table = do_reproduce(model, [d for d in datasets.split(",") if d], seeds, out, results, data_dir,
                         overrides=set_, key=key)
    typer.echo(table)


def main() -> None:
    try:
        app(standalone_mode=False)
    except KGRecError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
