"""RecBole 1.2.1's KTUP and BPR: seconds of training steps on atomic files (issue 10).

Run by ``benchmarks/speed_ktup.py --recbole PYTHON`` with a Python that has RecBole installed
(a separate venv; RecBole is no kgrec dependency):

    PYTHON benchmarks/recbole_epoch.py --data DIR [--rounds 3] [--steps 300]

``DIR/synml1m`` holds ``synml1m.{train,valid,test}.inter``, ``synml1m.kg`` and
``synml1m.link`` (written by ``speed_ktup.write_atomic_files``). Settings as kgrec's
``ktup-ml1m-ktup`` / ``bprmf-ml1m-ktup`` presets where RecBole has them: dimension 100, batch
256, L1 distance, soft induction (``use_st_gumbel: False``), Adam lr 1e-3 for KTUP, Adagrad
lr 0.005 for BPR, one uniform negative per positive, one thread. RecBole's KGTrainer trains
KTUP in alternating whole passes (``train_rec_step`` rec epochs, then ``train_kg_step`` KG
epochs); one kgrec joint step (a rec batch and a KG batch) is compared with one RecBole rec
step plus one RecBole KG step, so the script times ``--steps`` batches of each mode through
RecBole's own ``Trainer._train_epoch`` (its data loaders are cut after ``--steps`` batches;
0: whole passes). Prints one JSON line: seconds (wall and CPU) per round for each part.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time

import torch


class _Capped:
    """A RecBole data loader that stops after ``n`` batches (attributes delegated)."""

    def __init__(self, loader, n: int) -> None:
        self._loader, self._n = loader, n

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __iter__(self):
        it = iter(self._loader)
        return itertools.islice(it, self._n) if self._n else it

    def __len__(self) -> int:
        return min(self._n, len(self._loader)) if self._n else len(self._loader)


def build(model_name: str, data: str, extra: dict):
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    cfg = {"data_path": data, "benchmark_filename": ["train", "valid", "test"],
           "load_col": {"inter": ["user_id", "item_id"],
                        "kg": ["head_id", "relation_id", "tail_id"],
                        "link": ["item_id", "entity_id"]},
           "train_batch_size": 256, "embedding_size": 100, "epochs": 1, "seed": 0,
           "reproducibility": True, "use_gpu": False, "device": "cpu", "show_progress": False,
           "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
           "eval_args": {"mode": "full", "order": "RO", "group_by": "user"},
           "worker": 0, "checkpoint_dir": data + "/saved", "log_wandb": False, **extra}
    config = Config(model=model_name, dataset="synml1m", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().setLevel(logging.ERROR)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return trainer, train_data, dataset


def timed(fn) -> tuple[float, float]:
    w, p = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import recbole

    out: dict = {"recbole": recbole.__version__, "steps": args.steps, "parts": {}}
    ktup, ktup_data, ds = build("KTUP", args.data, {
        "L1_flag": True, "use_st_gumbel": False, "margin": 1.0, "kg_weight": 1.0,
        "align_weight": 1.0, "learner": "adam", "learning_rate": 0.001,
        "train_rec_step": 1, "train_kg_step": 1})
    out["sizes"] = {"users": ds.user_num - 1, "items": ds.item_num - 1,
                    "entities": ds.entity_num - 1, "relations": ds.relation_num - 1,
                    "train_ratings": len(ktup_data._dataset.inter_feat),
                    "triples": len(ds.kg_feat)}
    bpr, bpr_data, _ = build("BPR", args.data, {"learner": "adagrad", "learning_rate": 0.005})
    cap_k, cap_b = _Capped(ktup_data, args.steps), _Capped(bpr_data, args.steps)
    parts = {"ktup_rec": [], "ktup_kg": [], "bpr": []}
    for k in range(args.rounds):
        # epoch index 2k: rec pass, 2k + 1: KG pass (train_rec_step = train_kg_step = 1)
        parts["ktup_rec"].append(timed(lambda k=k: ktup._train_epoch(cap_k, 2 * k)))
        parts["ktup_kg"].append(timed(lambda k=k: ktup._train_epoch(cap_k, 2 * k + 1)))
        parts["bpr"].append(timed(lambda k=k: bpr._train_epoch(cap_b, k)))
    out["parts"] = {k: {"wall_s": [w for w, _ in v], "cpu_s": [c for _, c in v]}
                    for k, v in parts.items()}
    out["batches"] = {"rec": len(cap_k), "bpr": len(cap_b)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
