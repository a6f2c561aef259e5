"""KTUP and BPRMF speed at the size of KTUP's MovieLens-1m (issue 10, "Speed").

    python benchmarks/speed_ktup.py [--rounds 3] [--steps 0] [--eval synthetic,lastfm]
                                    [--recbole /work/recbole-venv/bin/python]
                                    [--write-results docs/results.md]

1. **Data**: a synthetic dataset of the shape of KTUP's MovieLens-1m release (6,040 users,
   3,260 items, 701,669 training ratings, 14,708 entities, 20 relations, 303,935 training
   triples, 2,934 items aligned with an entity as in KTUP's Table 1), built in memory from
   ``--seed`` (:func:`synthetic_ml1m`): skewed user activity, item popularity and entity
   degrees, distinct pairs and triples, a 7:1:2 rating split and 70/10/20 KG split.
2. **Training epochs** on one CPU thread, through kgrec's trainer with the presets
   ``ktup-ml1m-ktup`` (joint steps: one rec batch and one KG batch of 256, one Adam) and
   ``bprmf-ml1m-ktup`` (batch 256, Adagrad), against a minimal plain-PyTorch loop of the
   same model written here from the equations (:class:`PlainKTUP`, :class:`PlainBPRMF`:
   same initial weights, losses, batch size and optimiser), which samples with torch
   alone: ``randperm`` order, tensor slices, ``randint`` negatives redrawn while they are a
   training positive (``searchsorted`` on sorted keys), and for KG batches a coin per triple
   and one filtered corrupted head or tail. The two alternate round by round
   (kgrec, plain, kgrec, ...) so that a busy machine slows both alike; the ratio is the
   median of the per-round ratios. ``--steps N`` stops each timed epoch after ``N`` steps
   (the trainer's ``max_examples``), for a short check; 0 times whole epochs.
3. **RecBole 1.2.1** (``--recbole PYTHON``, a Python with RecBole installed; never a kgrec
   dependency): the same synthetic data as atomic files in a temporary folder and
   ``benchmarks/recbole_epoch.py`` run by that Python (see there for what it times).
4. **Full-ranking evaluation** (``evaluate_topk`` on the validation split: every item not
   among the user's training positives ranked for every user with a validation positive)
   for KTUP and BPRMF on the synthetic data and on Last.FM (``--eval``), with KTUP also
   timed through the former per-pair broadcast path (``old_score_all``) for comparison, and
   KTUP's KG validation (the second protocol of its validation) on Last.FM.

Prints markdown and one JSON line; ``--write-results PATH`` writes the ``speed:ktup`` block.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.config import load_config
from kgrec.data.dataset import KGDataset, Split
from kgrec.data.registry import atomic_write_bytes
from kgrec.data.samplers import make_sampler
from kgrec.evaluation import evaluate_kg, evaluate_topk
from kgrec.presets import resolve_config
from kgrec.reproduce import update_section
from kgrec.training.experiment import build_model, check_schedule, make_optimizers, prepare_data
from kgrec.training.trainer import Trainer
from kgrec.utils import machine_description

HERE = Path(__file__).resolve().parent

#: KTUP's MovieLens-1m release (issue 10; KTUP Table 1 for the alignments)
ML1M = {"users": 6_040, "items": 3_260, "train": 701_669, "entities": 14_708, "relations": 20,
        "kg_train": 303_935, "aligned": 2_934, "kg_total": 434_189}


# --- 1. synthetic data ----------------------------------------------------------------------
def _distinct(rng: np.random.Generator, total: int, draw) -> np.ndarray:
    """``total`` distinct int64 keys from ``draw(m)`` (``m`` keys at a time), in random order."""
    keys = np.zeros(0, np.int64)
    while len(keys) < total:
        keys = np.unique(np.concatenate([keys, draw(int((total - len(keys)) * 1.2) + 1000)]))
    return rng.permutation(keys)[:total]


def _zipf(rng: np.random.Generator, n: int, s: float) -> np.ndarray:
    """Probabilities ``~ 1 / (rank + 10)^s`` over ``n`` ids in random order."""
    w = 1.0 / (np.arange(n) + 10.0) ** s
    return rng.permutation(w / w.sum())


def synthetic_ml1m(seed: int = 0) -> tuple[KGDataset, Split]:
    """A dataset of the shape of KTUP's MovieLens-1m release (module docstring), seeded."""
    rng = np.random.default_rng(seed)
    nu, ni, ne, nr = ML1M["users"], ML1M["items"], ML1M["entities"], ML1M["relations"]
    n_train = ML1M["train"]
    n_valid = round(n_train / 7)
    n_test = 2 * n_valid  # 7:1:2 per the KTUP paper, Section 6.3
    uw = np.minimum(rng.lognormal(0.0, 0.8, nu), 8.0)  # user activity, capped
    uw /= uw.sum()
    iw = _zipf(rng, ni, 1.0)
    keys = _distinct(rng, n_train + n_valid + n_test,
                     lambda m: rng.choice(nu, m, p=uw) * ni + rng.choice(ni, m, p=iw))
    pairs = np.stack([keys // ni, keys % ni, np.ones(len(keys), np.int64)], 1)
    split = Split(train=pairs[:n_train], valid=pairs[n_train:n_train + n_valid],
                  test=pairs[n_train + n_valid:])
    ew, rw = _zipf(rng, ne, 0.8), _zipf(rng, nr, 1.0)
    tkeys = _distinct(rng, ML1M["kg_total"], lambda m: (rng.choice(ne, m, p=ew) * nr
                                                         + rng.choice(nr, m, p=rw)) * ne
                      + rng.choice(ne, m, p=ew))
    triples = np.stack([tkeys // (nr * ne), tkeys // ne % nr, tkeys % ne], 1)
    n_kt, n_kv = ML1M["kg_train"], round(ML1M["kg_train"] / 7)
    kg_split = {"train": triples[:n_kt], "valid": triples[n_kt:n_kt + n_kv],
                "test": triples[n_kt + n_kv:]}
    item_entity = np.full(ni, -1, np.int64)
    item_entity[rng.choice(ni, ML1M["aligned"], replace=False)] = rng.choice(
        ne, ML1M["aligned"], replace=False)
    ds = KGDataset(name="synthetic-ml1m-ktup", interactions=pairs, triples=triples,
                   item_entity=item_entity, n_users=nu, n_items=ni, n_entities=ne,
                   n_relations=nr, given_split=split, kg_split=kg_split,
                   meta={"layout": "synthetic", "seed": seed})
    return ds, split


# --- 2. minimal plain-PyTorch loops -----------------------------------------------------------
def _member(sorted_keys: Tensor, q: Tensor) -> Tensor:
    pos = torch.searchsorted(sorted_keys, q).clamp_max(len(sorted_keys) - 1)
    return sorted_keys[pos] == q


def _redraw(keys: Tensor, base: Tensor, n: int, tries: int = 50) -> Tensor:
    """For each row a uniform id in ``[0, n)`` with ``base + id`` not in ``keys``."""
    x = torch.randint(n, base.shape)
    for _ in range(tries):
        bad = torch.nonzero(_member(keys, base + x)).squeeze(1)
        if len(bad) == 0:
            break
        x[bad] = torch.randint(n, (len(bad),))
    return x


class PlainKTUP(nn.Module):
    """KTUP (soft induction, L1) written directly from Eq. 4, 8-21, for the minimal loop."""

    def __init__(self, state: dict[str, Tensor], item_entity: Tensor, lam: float,
                 margin: float) -> None:
        super().__init__()
        names = {"user": "user_emb.weight", "item": "item_emb.weight", "pref": "pref_emb.weight",
                 "pref_norm": "pref_norm_emb.weight", "ent": "entity_emb.weight",
                 "rel": "relation_emb.weight", "rel_norm": "norm_emb.weight"}
        for k, v in names.items():
            setattr(self, k, nn.Parameter(state[v].detach().clone()))
        self.register_buffer("ie", item_entity.clamp_min(0))
        self.register_buffer("aligned", (item_entity >= 0).float()[:, None])
        self.lam, self.margin = lam, margin

    @staticmethod
    def _orth(d: Tensor, w: Tensor) -> Tensor:
        w = F.normalize(w, dim=-1)
        return ((w * d).sum(-1).pow(2) / d.pow(2).sum(-1).clamp_min(1e-12)).mean()

    @staticmethod
    def _hyper(x: Tensor, w: Tensor, d: Tensor) -> Tensor:
        """``||x_perp + d||_1`` with ``x_perp = x - (w^T x) w``, ``w`` normalised."""
        w = F.normalize(w, dim=-1)
        return (x - (x * w).sum(-1, keepdim=True) * w + d).abs().sum(-1)

    def rec_loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        prefs, normals = self.pref + self.rel, self.pref_norm + self.rel_norm
        u = self.user[users].repeat(2, 1)
        items = torch.cat([pos, neg])  # one gather per table (dense gradients)
        i = self.item[items] + self.ent[self.ie[items]] * self.aligned[items]
        a = torch.softmax((u + i) @ prefs.T, -1)
        g_pos, g_neg = self._hyper(u - i, a @ normals, a @ prefs).split(len(pos))
        loss = -F.logsigmoid(g_neg - g_pos).mean() + self._orth(prefs, normals)
        return self.lam * loss

    def kg_distance(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return self._hyper(self.ent[h] - self.ent[t], self.rel_norm[r], self.rel[r])

    def kg_loss(self, h: Tensor, r: Tensor, t: Tensor, ch: Tensor, ct: Tensor) -> Tensor:
        e = self.ent[torch.cat([h, ch, t, ct])]  # one gather per table: [h; ch] - [t; ct]
        d, w = self.rel[r].repeat(2, 1), self.rel_norm[r].repeat(2, 1)
        f_pos, f_neg = self._hyper(e[:2 * len(h)] - e[2 * len(h):], w, d).split(len(h))
        reg = (F.relu(e.pow(2).sum(-1) - 1).mean() + F.relu(d.pow(2).sum(-1) - 1).mean()
               + self._orth(d, w))  # d, w repeated: the same means
        return (1 - self.lam) * (F.relu(f_pos + self.margin - f_neg).mean() + reg)


class PlainBPRMF(nn.Module):
    """BPRMF, ``-log sigmoid(u^T i+ - u^T i-)`` plus the batch L2 term, for the minimal loop."""

    def __init__(self, state: dict[str, Tensor], l2: float) -> None:
        super().__init__()
        self.user = nn.Parameter(state["user_emb.weight"].detach().clone())
        self.item = nn.Parameter(state["item_emb.weight"].detach().clone())
        self.l2 = l2

    def rec_loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        u = self.user[users]
        ip, ineg = self.item[torch.cat([pos, neg])].split(len(pos))
        loss = -F.logsigmoid((u * (ip - ineg)).sum(-1)).mean()
        return loss + self.l2 * (u.pow(2).sum(-1) + ip.pow(2).sum(-1) + ineg.pow(2).sum(-1)).mean()


def plain_epoch_fn(plain: nn.Module, opt: torch.optim.Optimizer, split: Split, ds: KGDataset,
                   batch: int, with_kg: bool):
    """One epoch of the minimal loop: a function of ``max_steps`` (0: whole epoch)."""
    tr = torch.from_numpy(split.train)
    users, items = tr[:, 0].contiguous(), tr[:, 1].contiguous()
    ni, ne, nr = ds.n_items, ds.n_entities, ds.n_relations
    pos_keys = torch.unique(users * ni + items)  # sorted
    kg = torch.from_numpy(ds.kg_split["train"])
    h_all, r_all, t_all = kg[:, 0].contiguous(), kg[:, 1].contiguous(), kg[:, 2].contiguous()
    # true triples as (h, r) -> t keys and, offset, (t, r) -> h keys: one sorted array
    off = ne * nr * ne
    kg_keys = torch.unique(torch.cat([(h_all * nr + r_all) * ne + t_all,
                                      off + (t_all * nr + r_all) * ne + h_all]))

    def kg_batches():
        while True:
            perm = torch.randperm(len(kg))
            h, r, t = h_all[perm], r_all[perm], t_all[perm]
            for s in range(0, len(perm), batch):
                yield h[s:s + batch], r[s:s + batch], t[s:s + batch]

    def epoch(max_steps: int = 0) -> None:
        perm = torch.randperm(len(users))
        u_ep, i_ep = users[perm], items[perm]
        kgi = kg_batches()
        for step, s in enumerate(range(0, len(perm), batch)):
            if max_steps and step >= max_steps:
                break
            u, ip = u_ep[s:s + batch], i_ep[s:s + batch]
            neg = _redraw(pos_keys, u * ni, ni)
            opt.zero_grad(set_to_none=True)
            loss = plain.rec_loss(u, ip, neg)
            if with_kg:
                h, r, t = next(kgi)
                head = torch.rand(len(h)) < 0.5  # corrupt the head or the tail
                anchor = torch.where(head, t, h)
                base = torch.where(head, off, 0) + (anchor * nr + r) * ne
                e = _redraw(kg_keys, base, ne)
                loss = loss + plain.kg_loss(h, r, t, torch.where(head, e, h),
                                            torch.where(head, t, e))
            loss.backward()
            opt.step()

    return epoch


def _plain_optimizer(cfg, params) -> torch.optim.Optimizer:
    cls = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad}[cfg.train.optimizer]
    lr = cfg.train.for_task(cfg.train.lr, "rec")
    return cls(params, lr=lr, weight_decay=cfg.train.weight_decay, fused=True)


def _check_equal(name: str, model, plain, ds: KGDataset, split: Split) -> float:
    """Largest difference between kgrec's and the plain model's losses on one batch."""
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(len(split.train), (256,), generator=g)
    tr = torch.from_numpy(split.train[idx.numpy()])
    u, ip = tr[:, 0], tr[:, 1]
    neg = torch.randint(ds.n_items, (256,), generator=g)
    model.eval()
    with torch.no_grad():
        got = [model({"users": u, "pos_items": ip, "neg_items": neg}, task="rec")]
        want = [plain.rec_loss(u, ip, neg)]
        if name == "ktup":
            kg = torch.from_numpy(ds.kg_split["train"][:256])
            h, r, t = kg[:, 0], kg[:, 1], kg[:, 2]
            got.append(model.triple_distance(h, r, t))
            want.append(plain.kg_distance(h, r, t))
    model.train()
    return max(float((a - b).abs().max()) for a, b in zip(got, want, strict=True))


def bench_training(ds: KGDataset, split: Split, rounds: int, steps: int) -> list[dict]:
    """kgrec trainer vs minimal loop, KTUP and BPRMF, alternating round by round."""
    cases = []
    for name, preset in (("ktup", "ktup-ml1m-ktup"), ("bprmf", "bprmf-ml1m-ktup")):
        cfg = load_config(resolve_config(preset), ["train.threads=1"])
        torch.manual_seed(0)
        model = build_model(cfg, ds, split)
        init = copy.deepcopy(model.state_dict())
        tasks = model.tasks
        samplers = {t: make_sampler(model.task_samplers[t], ds, split,
                                    cfg.train.for_task(cfg.train.batch_size, t),
                                    **{**model.sampler_defaults(t),
                                       **cfg.train.sampler_options.get(t, {})}) for t in tasks}
        bs = samplers[tasks[0]].batch_size
        trainer = Trainer(model, samplers, make_optimizers(cfg, model), check_schedule(cfg, model),
                          validate=dict, monitor="none", epochs=1, patience=0, progress=False,
                          joint=cfg.train.joint,
                          max_examples={tasks[0]: steps * bs} if steps else None)
        if name == "ktup":
            if model.induction != "soft" or model.norm != 1 or model.corrupt != "uniform":
                raise SystemExit("the plain KTUP loop covers soft induction, L1, uniform corruption")
            plain = PlainKTUP(init, model.item_entity, model.joint_lambda, model.margin)
        else:
            plain = PlainBPRMF(init, model.l2)
        diff = _check_equal(name, model, plain, ds, split)
        plain_epoch = plain_epoch_fn(plain, _plain_optimizer(cfg, plain.parameters()), split, ds,
                                     bs, with_kg=name == "ktup")
        cases.append({"name": name, "preset": preset, "trainer": trainer, "plain": plain_epoch,
                      "steps": steps or len(samplers[tasks[0]]), "batch": bs,
                      "optimizer": cfg.train.optimizer, "joint": cfg.train.joint,
                      "loss_max_abs_diff": diff, "pairs": []})
    for k in range(rounds):
        for c in cases:
            c["trainer"].state.examples = {}
            w0, p0 = time.perf_counter(), time.process_time()
            c["trainer"].train_epoch(k)
            w1, p1 = time.perf_counter(), time.process_time()
            c["plain"](steps)
            c["pairs"].append((w1 - w0, time.perf_counter() - w1, p1 - p0, time.process_time() - p1))
            print(f"round {k}: {c['name']} kgrec {w1 - w0:.2f} s ({p1 - p0:.2f} CPU s), plain "
                  f"{c['pairs'][-1][1]:.2f} s ({c['pairs'][-1][3]:.2f} CPU s)", file=sys.stderr,
                  flush=True)
    out = []
    for c in cases:
        pairs = c["pairs"]
        out.append({k: c[k] for k in ("name", "preset", "steps", "batch", "optimizer", "joint",
                                      "loss_max_abs_diff")}
                   | {"kgrec_s": [p[0] for p in pairs], "plain_s": [p[1] for p in pairs],
                      "kgrec_cpu_s": [p[2] for p in pairs], "plain_cpu_s": [p[3] for p in pairs],
                      "ratio": statistics.median(p[0] / p[1] for p in pairs),
                      "cpu_ratio": statistics.median(p[2] / p[3] for p in pairs)})
    return out


# --- 3. RecBole -------------------------------------------------------------------------------
def write_atomic_files(ds: KGDataset, split: Split, folder: Path) -> Path:
    """RecBole atomic files of the synthetic data: ``.train/.valid/.test.inter`` (RecBole's
    ``benchmark_filename``), ``.kg`` (training triples) and ``.link``; ids as tokens."""
    name = "synml1m"
    root = folder / name
    root.mkdir(parents=True, exist_ok=True)

    def table(header: str, rows: np.ndarray) -> bytes:
        body = "\n".join("\t".join(map(str, r)) for r in rows.tolist())
        return (header + "\n" + body + "\n").encode()

    for part in ("train", "valid", "test"):
        rows = getattr(split, part)[:, :2]
        atomic_write_bytes(root / f"{name}.{part}.inter",
                           table("user_id:token\titem_id:token", rows))
    atomic_write_bytes(root / f"{name}.kg", table("head_id:token\trelation_id:token\ttail_id:token",
                                                  ds.kg_split["train"]))
    linked = np.flatnonzero(ds.item_entity >= 0)
    atomic_write_bytes(root / f"{name}.link", table("item_id:token\tentity_id:token",
                                                    np.stack([linked, ds.item_entity[linked]], 1)))
    return root


def bench_recbole(python: str, ds: KGDataset, split: Split, rounds: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="kgrec-recbole-") as tmp:
        write_atomic_files(ds, split, Path(tmp))
        cmd = [python, str(HERE / "recbole_epoch.py"), "--data", tmp, "--rounds", str(rounds),
               "--steps", str(steps)]
        # cwd: RecBole writes its log/ and log_tensorboard/ folders into the working directory
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3000, cwd=tmp)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- 4. evaluation ----------------------------------------------------------------------------
def old_score_all(model, users: Tensor) -> Tensor:
    """KTUP's former ``score_all``: ``pair_distance`` on broadcast ``(chunk, n_items, d)``
    user/item tensors, chunks of ``2**22`` elements (for the before/after timing)."""
    u_all, items = model.user_emb(users), model.all_items()
    n, d = items.shape
    step = max(1, (1 << 22) // max(n * d, 1))
    return torch.cat([-model.pair_distance(u_all[s:s + step, None, :], items[None])
                      for s in range(0, len(users), step)])


class _OldPath(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.n_users, self.n_items = model, model.n_users, model.n_items

    def score_all(self, users: Tensor) -> Tensor:
        return old_score_all(self.model, users)


def bench_eval(which: str, rounds: int) -> list[dict]:
    """Valid full-ranking time of KTUP and BPRMF (untrained: ranking costs the same)."""
    if which == "synthetic":
        ds, split = synthetic_ml1m(0)
        presets = {"ktup": "ktup-ml1m-ktup", "bprmf": "bprmf-ml1m-ktup"}
    else:
        presets = {"ktup": f"ktup-{which}", "bprmf": f"bprmf-{which}"}
        ds, split = prepare_data(load_config(resolve_config(presets["ktup"]), ["train.threads=1"]))
    out = []
    for name, preset in presets.items():
        cfg = load_config(resolve_config(preset), ["train.threads=1"])
        torch.manual_seed(0)
        model = build_model(cfg, ds, split).eval()
        variants = {"kgrec": model} | ({"former per-pair path": _OldPath(model)}
                                       if name == "ktup" else {})
        if name == "ktup" and which != "synthetic" and ds.kg_split:
            known = np.concatenate([ds.kg_split[k] for k in ("train", "valid", "test")])
            variants["KG validation (filtered)"] = "kg"
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for k, m in variants.items():
                t0 = time.perf_counter()
                with torch.no_grad():
                    if m == "kg":
                        evaluate_kg(model, ds.kg_split["valid"], known)
                    else:
                        evaluate_topk(m, split, "valid", cfg.eval.ks, batch_users=cfg.eval.batch_users,
                                      n_users=ds.n_users, n_items=ds.n_items)
                times[k].append(time.perf_counter() - t0)
        n_users = len(np.unique(split.valid[:, 0]))
        for k, ts in times.items():
            out.append({"data": which, "model": name, "path": k, "users": n_users,
                        "items": ds.n_items, "kg_valid": len(ds.kg_split["valid"]) if ds.kg_split else 0,
                        "s": ts, "median_s": statistics.median(ts)})
            print(f"eval {which} {name} {k}: {ts}", file=sys.stderr, flush=True)
    return out


# --- report -----------------------------------------------------------------------------------
def recbole_lines(rb: dict, training: list[dict]) -> list[str]:
    """RecBole's CPU seconds per step against kgrec's (medians of the rounds)."""
    if "error" in rb:
        return [f"RecBole 1.2.1 did not run: {' '.join(rb['error'])}"]
    med = statistics.median
    parts = {k: med(v["cpu_s"]) / rb["steps"] * 1000 for k, v in rb["parts"].items()}
    ours = {t["name"]: med(t["kgrec_cpu_s"]) / t["steps"] * 1000 for t in training}
    ktup_rb = parts["ktup_rec"] + parts["ktup_kg"]
    sizes = rb.get("sizes", {})
    lines = [
        f"RecBole {rb['recbole']} (separate venv, `benchmarks/recbole_epoch.py`; the same data "
        f"as atomic files, RecBole's counts: {sizes.get('users', '?'):,} users, "
        f"{sizes.get('items', '?'):,} items, {sizes.get('train_ratings', '?'):,} training ratings, "
        f"{sizes.get('entities', '?'):,} entities incl. unaligned items, "
        f"{sizes.get('triples', '?'):,} triples): CPU ms per step, {rb['steps']} steps of 256 per "
        "part, medians of the rounds. RecBole trains KTUP in alternating whole rec and KG passes; "
        "one kgrec joint step = one RecBole rec step + one RecBole KG step.",
        "",
        "| model | RecBole ms / step | kgrec ms / step | RecBole / kgrec |",
        "|---|---|---|---|",
    ]
    if "ktup" in ours:
        lines.append(f"| KTUP (rec {parts['ktup_rec']:.1f} + KG {parts['ktup_kg']:.1f}) | "
                     f"{ktup_rb:.1f} | {ours['ktup']:.1f} | {ktup_rb / ours['ktup']:.2f}x |")
    if "bprmf" in ours:
        lines.append(f"| BPR / BPRMF | {parts['bpr']:.1f} | {ours['bprmf']:.1f} | "
                     f"{parts['bpr'] / ours['bprmf']:.2f}x |")
    return lines


def report(args, training: list[dict], recbole: dict | None, evals: list[dict]) -> str:
    med = statistics.median
    lines = [
        "### KTUP speed (issue 10)",
        "",
        f"Command: `python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}`; "
        f"machine: {machine_description()}, one intra-op thread, {time.strftime('%Y-%m-%d')}. "
        f"Data: synthetic, the shape of KTUP's MovieLens-1m release ({ML1M['users']:,} users, "
        f"{ML1M['items']:,} items, {ML1M['train']:,} training ratings, {ML1M['entities']:,} "
        f"entities, {ML1M['relations']} relations, {ML1M['kg_train']:,} training triples, "
        f"{ML1M['aligned']:,} aligned items), seed {args.seed}. No GPU was lent: CPU only.",
    ]
    if args.reuse is not None:
        lines[-1] += (" RecBole and evaluation figures: from the earlier run whose output is "
                      "`--reuse` (same machine and day).")
    if training:
        steps = training[0]["steps"]
        lines += [
            "",
            f"Training: {'whole epochs' if not args.steps else f'the first {steps} steps of an epoch'}"
            f" ({steps} steps of {training[0]['batch']}), {args.rounds} rounds alternating kgrec and "
            "the plain loop; ratio = median of the per-round ratios.",
            "",
            "| model (preset) | kgrec s | plain loop s | ratio kgrec / plain (wall) | kgrec CPU s | "
            "plain loop CPU s | ratio (CPU time) | kgrec ms per step (CPU) | loss check (max abs diff) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in training:
            mode = "joint rec + KG steps, Adam" if t["joint"] else t["optimizer"].capitalize()
            lines.append(f"| {t['name'].upper()} (`{t['preset']}`, {mode}) | {med(t['kgrec_s']):.2f} | "
                         f"{med(t['plain_s']):.2f} | {t['ratio']:.3f} | {med(t['kgrec_cpu_s']):.2f} | "
                         f"{med(t['plain_cpu_s']):.2f} | {t['cpu_ratio']:.3f} | "
                         f"{1000 * med(t['kgrec_cpu_s']) / t['steps']:.1f} | "
                         f"{t['loss_max_abs_diff']:.1e} |")
    if recbole is not None:
        lines += ["", *recbole_lines(recbole, training)]
    if evals:
        lines += [
            "",
            "Full-ranking validation (`evaluate_topk`, valid split, every item not among the "
            f"user's training positives; medians of {args.eval_rounds}):",
            "",
            "| data | model | path | users x items | s (median) |",
            "|---|---|---|---|---|",
        ]
        for e in evals:
            size = (f"{e['kg_valid']:,} triples x 2 sides" if e["path"].startswith("KG")
                    else f"{e['users']:,} x {e['items']:,}")
            lines.append(f"| {e['data']} | {e['model'].upper()} | {e['path']} | {size} | "
                         f"{e['median_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating training rounds")
    ap.add_argument("--steps", type=int, default=0, help="steps per timed epoch (0: whole epoch)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    ap.add_argument("--no-training", action="store_true", help="skip the training epochs")
    ap.add_argument("--eval", default="synthetic,lastfm",
                    help="datasets of the full-ranking timing ('' for none)")
    ap.add_argument("--eval-rounds", type=int, default=2)
    ap.add_argument("--recbole", default=None, metavar="PYTHON",
                    help="a Python with RecBole 1.2.1 installed (separate venv)")
    ap.add_argument("--reuse", type=Path, default=None, metavar="JSON",
                    help="the JSON line of an earlier run: its RecBole and evaluation parts "
                         "stand in for those this run does not measure")
    ap.add_argument("--write-results", type=Path, default=None, metavar="PATH",
                    help="write the speed:ktup block into this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds, split = synthetic_ml1m(args.seed)
    training = [] if args.no_training else bench_training(ds, split, args.rounds, args.steps)
    recbole = (bench_recbole(args.recbole, ds, split, args.rounds, args.steps)
               if args.recbole else None)
    evals = [e for w in args.eval.split(",") if w for e in bench_eval(w, args.eval_rounds)]
    if args.reuse is not None:
        earlier = json.loads(args.reuse.read_text().strip().splitlines()[-1])
        recbole = recbole if recbole is not None else earlier.get("recbole")
        evals = evals or earlier.get("eval", [])
    body = report(args, training, recbole, evals)
    print(body)
    print(json.dumps({"training": training, "recbole": recbole, "eval": evals}))
    if args.write_results is not None:
        update_section(args.write_results, "speed:ktup", body)


if __name__ == "__main__":
    main()
