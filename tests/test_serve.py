"""``kgrec serve``: the cached scoring against each model's own, every endpoint and every
error path of the HTTP API (FastAPI TestClient on small trained runs), ``kgrec export``,
and ``kgrec serve`` itself as a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kgrec.cli import main
from kgrec.config import load_config
from kgrec.errors import KGRecError
from kgrec.models import MODELS
from kgrec.recommend import Recommender
from kgrec.training.experiment import build_model, prepare_data, run

from .conftest import write_processed

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from kgrec.serve.app import create_app  # noqa: E402
from kgrec.serve.engine import Engine, NotFound, Unsupported  # noqa: E402

TOKEN = "s3cret"


def _cfg(folder, model, model_args, protocols=None, **data):
    raw = {"model": model, "model_args": model_args,
           "data": {"dataset": str(folder), "layout": "processed", **data},
           "train": {"epochs": 1, "batch_size": 32, "threads": 1},
           "eval": {"ks": [1, 5]}}
    if protocols:
        raw["eval"]["protocols"] = protocols
        raw["train"]["monitor"] = "valid.kg.hits@10" if protocols == ["kg"] else "valid.recall@5"
    return load_config(raw=raw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs trained for one epoch on tiny synthetic data: MKR (CTR) and KTUP (top-K and
    KG completion), plus a TransE run (KG only)."""
    base = tmp_path_factory.mktemp("serve")
    folder = write_processed(base / "tiny")
    out = {}
    for name, model, args, protocols, data in [
        ("mkr", "mkr", {"dim": 4, "n_low_layers": 1}, None, {}),
        ("ktup", "ktup", {"dim": 8}, ["topk"], {"split": "per_user", "kg_split": [0.8, 0.1, 0.1]}),
        ("transe", "transe", {"dim": 8}, ["kg"], {"kg_split": [0.8, 0.1, 0.1]}),
    ]:
        run(_cfg(folder, model, args, protocols, **data), base / name, progress=False)
        out[name] = base / name
    return out


@pytest.fixture(scope="module")
def client(runs):
    app = create_app([runs["mkr"], runs["ktup"], runs["transe"]], token=TOKEN, max_body=4096,
                     max_batch=50)
    with TestClient(app, raise_server_exceptions=True) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


# ---- the cached scoring equals the model's own ----------------------------------------
@pytest.mark.parametrize("model,args", [
    ("mkr", {"dim": 4, "n_low_layers": 1}),
    ("mkr", {"dim": 4, "n_low_layers": 1, "inner_product": False}),
    ("bprmf", {"dim": 8}), ("cke", {"dim": 8}), ("cfkg", {"dim": 8}),
    ("fm", {"dim": 8}), ("cofm", {"dim": 8}), ("tup", {"dim": 8, "n_preferences": 3}),
    ("ktup", {"dim": 8}), ("jnskr", {"dim": 8}), ("hkrm", {"dim": 4}),
])
def test_cached_scores_equal_model_scores(tmp_path, model, args):
    """``score_all`` and pair scores from the precomputed representations equal the
    model's ``score_all``/``score`` for every user and item (untrained random weights)."""
    folder = write_processed(tmp_path / "d", n_users=12, n_items=16)
    cfg = _cfg(folder, model, args)
    dataset, split = prepare_data(cfg)
    torch.manual_seed(0)
    m = build_model(cfg, dataset, split).eval()
    engine = Engine(Recommender(m, dataset, split, cfg), model)
    assert engine.plan.kind != "model"
    users = np.arange(dataset.n_users)
    with torch.no_grad():
        want = m.score_all(torch.as_tensor(users))
        got = engine._scores_all(users)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        u = torch.arange(dataset.n_users).repeat_interleave(dataset.n_items)
        i = torch.arange(dataset.n_items).repeat(dataset.n_users)
        pairs = m.score(u, i)
        if m.ctr_output:
            pairs = torch.sigmoid(pairs)
    got_pairs = engine.score_pairs(u.tolist(), i.tolist())
    np.testing.assert_allclose(got_pairs, pairs.numpy(), rtol=1e-5, atol=1e-5)
    # recommendations: the best unseen items by the model's own scores
    recs = engine.recommend_many([3], k=4)[0]
    s = want[3].clone()
    s[torch.as_tensor(Recommender(m, dataset, split).seen(3))] = -torch.inf
    assert [r["item_index"] for r in recs] == torch.topk(s, 4).indices.tolist()


@pytest.mark.parametrize("model,args,start", [("jnskr", {"dim": 8}, "attention "),
                                              ("hkrm", {"dim": 4}, "")])
def test_explanations_read_with_names(tmp_path, model, args, start):
    """JNSKR attention and HKRM distributions come with readable lines; indices become
    the data's ids."""
    folder = write_processed(tmp_path / "d", n_users=12, n_items=16)
    cfg = _cfg(folder, model, args)
    dataset, split = prepare_data(cfg)
    m = build_model(cfg, dataset, split).eval()
    exp = Engine(Recommender(m, dataset, split, cfg), model).explanation(2, 5)
    assert exp["lines"] and all(line.startswith(start) for line in exp["lines"])
    if model == "hkrm":
        assert exp["lines"][0].startswith("user prefers: ") and "item_distribution" in exp
    if model == "jnskr":
        w = exp["weights"]
        assert exp["item"] == "5" and exp["entity"] == "5" and sum(w) == pytest.approx(1.0)
        assert exp["lines"][0].startswith(f"attention {max(w):.3f}: 5 --")
        assert len(exp["relation_names"]) == len(exp["tail_entities"]) == len(w)


def test_engine_matches_recommender(runs):
    rec = Recommender.from_run(runs["mkr"])
    engine = Engine(rec, "mkr")
    mine = engine.recommend_many(["5"], k=6, explain=True)[0]
    theirs = rec.recommend("5", k=6)
    assert [r["item"] for r in mine] == [r["item"] for r in theirs]
    probs = torch.sigmoid(torch.tensor([r["score"] for r in theirs])).tolist()  # MKR: logits
    assert [r["score"] for r in mine] == pytest.approx(probs, abs=1e-6)
    assert all(r["explanation"]["lines"] for r in mine)  # KG facts of each item
    with pytest.raises(NotFound):
        engine.user_index("nobody")
    with pytest.raises(Unsupported):
        engine.complete("0", head="0")
    with pytest.raises(KGRecError):
        engine.recommend_many(["5"], k=0)


def test_similar_is_cosine_of_item_vectors(runs):
    engine = Engine.load(runs["ktup"])
    v = torch.nn.functional.normalize(engine.plan.V, dim=1)
    cos = (v @ v[7]).numpy()
    cos[7] = -np.inf
    got = engine.similar("7", k=5)
    assert [r["item_index"] for r in got] == np.argsort(-cos, kind="stable")[:5].tolist()
    assert [r["similarity"] for r in got] == pytest.approx(np.sort(cos)[::-1][:5].tolist(), abs=1e-5)


def test_complete_ranks_by_model_kg_scores(runs):
    engine = Engine.load(runs["transe"])
    with torch.no_grad():
        want = engine.model.score_tails(torch.tensor([3]), torch.tensor([1]))[0]
        heads = engine.model.score_heads(torch.tensor([1]), torch.tensor([45]))[0]
    got = engine.complete("1", head="3", k=5)
    assert [int(r["entity"]) for r in got] == torch.topk(want, 5).indices.tolist()
    known = {tuple(t) for t in engine.dataset.triples.tolist()}
    assert [r["known"] for r in got] == [(3, 1, int(r["entity"])) in known for r in got]
    got = engine.complete("1", tail="45", k=3)
    assert [int(r["entity"]) for r in got] == torch.topk(heads, 3).indices.tolist()
    assert not engine.recommends
    with pytest.raises(Unsupported):
        engine.recommend_many(["1"])


# ---- HTTP endpoints ------------------------------------------------------------------
def test_health_and_models(client):
    r = client.get("/health", headers={"Authorization": ""})
    assert r.status_code == 200 and r.json() == {"status": "ok", "runs": ["mkr", "ktup", "transe"]}
    runs = client.get("/models").json()["runs"]
    assert [(m["run"], m["model"]) for m in runs] == [("mkr", "mkr"), ("ktup", "ktup"),
                                                      ("transe", "transe")]
    mkr, ktup, transe = runs
    assert mkr["score"] == "probability" and mkr["protocols"] == ["ctr", "topk"]
    assert "auc" in mkr["metrics"]["test"] and not mkr["completes"]
    assert ktup["completes"] and ktup["explains"] and ktup["score"] == "score"
    assert not transe["recommends"] and transe["completes"]
    assert transe["relation_ids"] == ["0", "1", "2"]
    assert client.get("/users", params={"limit": 3}).json()["users"] == ["0", "1", "2"]
    items = client.get("/items", params={"offset": 38, "limit": 5}).json()
    assert items["total"] == 40 and [x["item"] for x in items["items"]] == ["38", "39"]
    assert items["items"][0] == {"item": "38", "name": "38", "entity": "38"}


def test_recommend_get_and_batch(client, runs):
    r = client.get("/recommend", params={"user": "3", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    items = body["items"]
    assert body["score"] == "probability" and [x["rank"] for x in items] == [1, 2, 3, 4, 5]
    assert float(r.headers["server-timing"].split("dur=")[1]) > 0
    assert all(0 < x["score"] < 1 for x in items) and "explanation" not in items[0]
    rec = Recommender.from_run(runs["mkr"])
    assert [x["item"] for x in items] == [x["item"] for x in rec.recommend("3", k=5)]
    assert not {x["item_index"] for x in items} & set(rec.seen(3).tolist())
    # seen items allowed: the best item over all
    top = client.get("/recommend", params={"user": "3", "k": 1, "exclude_seen": "false"}).json()
    with torch.no_grad():
        best = int(rec.model.score_all(torch.tensor([3]))[0].argmax())
    assert top["items"][0]["item_index"] == best
    # explanations of KTUP: the induced preference as a relation, readable
    r = client.get("/recommend", params={"user": "3", "k": 3, "explain": "true", "run": "ktup"})
    exp = r.json()["items"][0]["explanation"]
    assert "relation" in exp and exp["lines"][0].startswith("preference: ")
    assert exp["item"] == r.json()["items"][0]["item"] and isinstance(exp["item_index"], int)
    assert all({"head", "relation", "tail"} <= set(f) for f in exp["facts"])
    # batch = one GET per user
    r = client.post("/recommend", json={"users": ["3", 4], "k": 5}, params={"run": "0"})
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["user"] for x in res] == ["3", "4"] and res[0]["items"] == items
    one = client.get("/recommend", params={"user": "4", "k": 5}).json()["items"]
    assert [x["item"] for x in res[1]["items"]] == [x["item"] for x in one]


def test_score_explain_similar_item_complete(client, runs):
    r = client.post("/score", json={"pairs": [{"user": "3", "item": "5"}, {"user": 4, "item": 6}]})
    assert r.status_code == 200
    got = [x["score"] for x in r.json()["scores"]]
    want = Recommender.from_run(runs["mkr"]).score(["3", "4"], ["5", "6"])
    assert got == pytest.approx(want.tolist(), abs=1e-6)
    r = client.get("/explain", params={"user": "3", "item": "5", "run": "ktup"})
    assert r.status_code == 200
    body = r.json()
    assert body["item"] == "5" and body["explanation"]["lines"]
    assert isinstance(body["explanation"]["weights"], list)
    r = client.get("/explain", params={"user": "3", "item": "5"})  # MKR: the item's KG facts
    assert r.json()["explanation"]["lines"][0].startswith("fact: 5 --")
    r = client.get("/similar", params={"item": "5", "k": 4, "run": "ktup"})
    sims = r.json()["items"]
    assert len(sims) == 4 and "5" not in [x["item"] for x in sims]
    assert [x["similarity"] for x in sims] == sorted([x["similarity"] for x in sims], reverse=True)
    r = client.get("/item", params={"item": "5"})
    info = r.json()
    assert info["entity"] == "5" and len(info["neighbours"]) == 3  # 3 triples per item
    assert all(n["head"] == "5" and n["head_item"] == "5" for n in info["neighbours"])
    assert info["neighbours"][0]["line"].startswith("5 --")
    r = client.get("/complete", params={"head": "5", "relation": "0", "k": 3, "run": "ktup"})
    assert r.status_code == 200 and len(r.json()["entities"]) == 3
    r = client.get("/complete", params={"tail": "45", "relation": "1", "run": "transe"})
    assert len(r.json()["entities"]) == 10
    r = client.get("/similar", params={"item": "5", "run": "transe"})  # entity embeddings
    assert r.status_code == 200 and len(r.json()["items"]) == 10


def test_page_docs_and_openapi(client):
    r = client.get("/", headers={"Authorization": ""})
    assert r.status_code == 200 and "<script src=\"/static/app.js\">" in r.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/models", "/recommend", "/score", "/explain", "/similar",
            "/complete", "/item"} <= set(paths)


# ---- every error path ----------------------------------------------------------------
ERRORS = [
    ("get", "/recommend", {"params": {"user": "nobody"}}, 404, "unknown user 'nobody'"),
    ("get", "/recommend", {"params": {"user": "999"}}, 404, "unknown user"),
    ("get", "/recommend", {"params": {"user": "3", "run": "nope"}}, 404, "unknown run 'nope'"),
    ("get", "/recommend", {"params": {"user": "3", "run": "7"}}, 404, "unknown run"),
    ("get", "/recommend", {"params": {"user": "3", "k": 0}}, 422, "k"),
    ("get", "/recommend", {"params": {"user": "3", "k": 100000}}, 422, "k"),
    ("get", "/recommend", {"params": {"user": "3", "k": "ten"}}, 422, "k"),
    ("get", "/recommend", {"params": {"user": "3", "exclude_seen": "maybe"}}, 422, "exclude_seen"),
    ("get", "/recommend", {"params": {}}, 422, "user"),
    ("get", "/recommend", {"params": {"user": "1", "run": "transe"}}, 422, "without user-item"),
    ("post", "/recommend", {"json": {"users": ["3", "nobody"]}}, 404, "unknown user 'nobody'"),
    ("post", "/recommend", {"json": {"users": []}}, 422, "users"),
    ("post", "/recommend", {"json": {"users": ["3"], "k": -1}}, 422, "k"),
    ("post", "/recommend", {"json": {"user": "3"}}, 422, "users"),
    ("post", "/recommend", {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
     422, "JSON"),
    ("post", "/recommend", {"json": {"users": ["3"] * 51}}, 413, "at most 50"),
    ("post", "/recommend", {"json": {"users": ["3"] * 2000}}, 413, "over 4096 bytes"),
    ("post", "/score", {"json": {"pairs": [{"user": "3", "item": "nothing"}]}}, 404, "unknown item"),
    ("post", "/score", {"json": {"pairs": [{"user": "3"}]}}, 422, "item"),
    ("post", "/score", {"json": {"pairs": [{"user": "3", "item": "1"}] * 51}}, 413, "at most 50"),
    ("get", "/explain", {"params": {"user": "3", "item": "400"}}, 404, "unknown item"),
    ("get", "/explain", {"params": {"user": "x", "item": "1"}}, 404, "unknown user"),
    ("get", "/explain", {"params": {"user": "3"}}, 422, "item"),
    ("get", "/similar", {"params": {"item": "nope"}}, 404, "unknown item"),
    ("get", "/similar", {"params": {"item": "1", "k": 0}}, 422, "k"),
    ("get", "/item", {"params": {"item": "-1"}}, 404, "unknown item"),
    ("get", "/complete", {"params": {"head": "1", "relation": "0"}}, 422, "does not do KG completion"),
    ("get", "/complete", {"params": {"relation": "0", "run": "ktup"}}, 422, "exactly one"),
    ("get", "/complete", {"params": {"head": "1", "tail": "2", "relation": "0", "run": "ktup"}},
     422, "exactly one"),
    ("get", "/complete", {"params": {"head": "nope", "relation": "0", "run": "ktup"}}, 404,
     "unknown entity"),
    ("get", "/complete", {"params": {"head": "1", "relation": "9", "run": "ktup"}}, 404,
     "unknown relation"),
    ("get", "/complete", {"params": {"head": "1", "relation": "0", "k": 0, "run": "ktup"}}, 422, "k"),
    ("get", "/items", {"params": {"limit": 0}}, 422, "limit"),
    ("get", "/users", {"params": {"offset": -1}}, 422, "offset"),
    ("get", "/no-such-page", {}, 404, "Not Found"),
    ("delete", "/recommend", {}, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize("method,path,kw,status,message", ERRORS)
def test_error_paths(client, method, path, kw, status, message):
    r = client.request(method.upper(), path, **kw)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and message in body["error"], body


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic s3cret", "s3cret"])
def test_token_required(client, header):
    headers = {"Authorization": header} if header is not None else {}
    c = TestClient(client.app)
    for path in ("/models", "/recommend?user=3", "/similar?item=1", "/users"):
        r = c.get(path, headers=headers)
        assert r.status_code == 401 and "token" in r.json()["error"].lower()
        assert r.headers["www-authenticate"] == "Bearer"
    assert c.post("/score", json={"pairs": [{"user": "3", "item": "1"}]},
                  headers=headers).status_code == 401
    assert c.get("/health", headers=headers).status_code == 200  # liveness stays open


def test_chunked_body_over_limit(client):
    def chunks():
        for _ in range(100):
            yield b" " * 100

    r = client.post("/score", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_no_5xx_on_odd_ids(client):
    """Ids that look like numbers, negative, huge or unicode are 404s, never 5xx."""
    for user in ["-3", "3.0", "9" * 40, "ü", "", "3 4"]:
        r = client.get("/recommend", params={"user": user})
        assert r.status_code == 404, (user, r.text)


# ---- export --------------------------------------------------------------------------
def test_export_embeddings(runs, tmp_path, capsys):
    out = tmp_path / "emb.npz"
    argv = ["export", str(runs["mkr"]), "--embeddings", str(out)]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    z = np.load(out)
    assert str(z["scoring"]) == "dot" and z["users"].shape[0] == len(z["user_ids"]) == 30
    rec = Recommender.from_run(runs["mkr"])
    with torch.no_grad():
        want = rec.model.score_all(torch.arange(30)).numpy()
    np.testing.assert_allclose(z["users"] @ z["items"].T, want, rtol=1e-4, atol=1e-5)
    assert z["entities"].shape[0] == len(z["entity_ids"])
    with pytest.raises(SystemExit) as e:  # refuses to overwrite
        main(argv)
    assert e.value.code == 2 and "--force" in capsys.readouterr().err


# ---- kgrec serve as a process --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dirs, port, env=None, token=None, extra=()):
    """``kgrec serve RUN...`` on 127.0.0.1:PORT; returns the process once /health answers."""
    import httpx

    cmd = [sys.executable, "-m", "kgrec.cli", "serve", *map(str, run_dirs), "--port", str(port),
           *extra]
    if token:
        cmd += ["--token", token]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kgrec serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("kgrec serve did not answer /health in 120 s")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_kgrec_serve_process(runs):
    """``kgrec serve`` on a free loopback port: every endpoint answers, every error path
    gives its status and JSON error, the token comes from $KGREC_TOKEN."""
    import httpx

    port = free_port()
    proc = start_server([runs["mkr"], runs["ktup"], runs["transe"]], port,
                        env={"KGREC_TOKEN": TOKEN}, extra=["--max-body", "4096", "--max-batch", "50"])
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/models").status_code == 401
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            for method, path, kw in [
                ("GET", "/", {}), ("GET", "/docs", {}), ("GET", "/openapi.json", {}),
                ("GET", "/static/app.js", {}), ("GET", "/health", {}), ("GET", "/models", {}),
                ("GET", "/users", {"params": {"run": "ktup"}}), ("GET", "/items", {}),
                ("GET", "/recommend", {"params": {"user": "3", "k": 3, "explain": "true"}}),
                ("POST", "/recommend", {"json": {"users": ["3", "4"]}, "params": {"run": "ktup"}}),
                ("POST", "/score", {"json": {"pairs": [{"user": "3", "item": "5"}]}}),
                ("GET", "/explain", {"params": {"user": "3", "item": "5", "run": "ktup"}}),
                ("GET", "/similar", {"params": {"item": "5"}}),
                ("GET", "/item", {"params": {"item": "5"}}),
                ("GET", "/complete", {"params": {"head": "5", "relation": "0", "run": "transe"}}),
                ("GET", "/complete", {"params": {"tail": "45", "relation": "1", "run": "ktup"}}),
            ]:
                r = c.request(method, path, **kw)
                assert r.status_code == 200, (path, r.text)
            r = c.get("/recommend", params={"user": "3", "k": 3, "run": "ktup"})
            assert len(r.json()["items"]) == 3
            for method, path, kw, status, message in ERRORS:
                r = c.request(method.upper(), path, **kw)
                assert r.status_code == status, (path, kw, r.text)
                assert message in json.loads(r.text)["error"]
    finally:
        stop_server(proc)


def test_runs_load_with_weights_only(runs, monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    Engine.load(runs["ktup"])
    assert calls and all(w is True for w in calls)


def test_serving_imports_no_training_only_modules(runs):
    """Loading runs for serving imports neither torch._dynamo (a meta-device model build
    pulls it in: 1-3 s of start) nor scipy.sparse (top-K evaluation only); what each costs
    is in docs/results.md's serve-load reading."""
    code = ("import sys; from pathlib import Path; from kgrec.serve.app import create_app; "
            f"create_app([Path({str(runs['mkr'])!r}), Path({str(runs['ktup'])!r})]); "
            "print(sorted(m for m in ('torch._dynamo', 'scipy.sparse') if m in sys.modules))")
    src = Path(__file__).resolve().parents[1] / "src"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(src)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_kgrec_serve_bad_run_dir(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path / "none"), "--port", str(free_port())])
    assert e.value.code == 2 and "checkpoint not found" in capsys.readouterr().err


# ---- the page in a real headless browser ---------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_page_in_browser(runs, tmp_path):
    """Debian's chromium, driven by playwright: choose a user, see the recommendations with
    explanations, click an item, see its similar items and KG neighbours; a screenshot is
    kept (tmp dir, and $KGREC_ARTIFACTS when set)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("KGREC_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} not installed and KGREC_REQUIRE_BROWSER is set")
        pytest.skip(f"{CHROMIUM} not installed (CI installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    port = free_port()
    proc = start_server([runs["ktup"], runs["mkr"]], port)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.querySelectorAll('#run option').length == 2")
            assert "ktup on" in page.inner_text("#run-info")
            page.fill("#user", "3")
            page.fill("#k", "5")
            page.click("#go")
            page.wait_for_selector("#recs li.rec")
            recs = page.locator("#recs li.rec")
            assert recs.count() == 5
            first = recs.nth(0)
            assert first.locator("ul.why li").first.inner_text().startswith("preference: ")
            item = first.locator("button.item-link").get_attribute("data-item")
            first.locator("button.item-link").click()
            page.wait_for_selector("#similar li.similar")
            assert page.inner_text("#item-name") == item
            assert page.locator("#similar li.similar").count() == 10
            assert page.locator("#neighbours li.neighbour").count() == 3
            assert f"{item} --" in page.locator("#neighbours li.neighbour").first.inner_text()
            # switching run: MKR, probabilities and KG-fact explanations
            page.select_option("#run", "mkr")
            page.wait_for_function("document.querySelector('#run-info').textContent.startsWith('mkr')")
            page.click("#go")
            page.wait_for_function("document.querySelector('#status').textContent.startsWith('top 5')"
                                   " && document.querySelector('#recs .score').textContent"
                                   ".startsWith('probability')")
            # an unknown user shows the API's error
            page.fill("#user", "nobody")
            page.click("#go")
            page.wait_for_selector("#status.error")
            assert "unknown user 'nobody'" in page.inner_text("#status")
            page.fill("#user", "3")
            page.click("#go")
            page.wait_for_selector("#recs li.rec")
            shot = tmp_path / "serve-page.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert not errors, errors
        assert shot.stat().st_size > 10_000
        if os.environ.get("KGREC_ARTIFACTS"):
            dest = Path(os.environ["KGREC_ARTIFACTS"])
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, dest / shot.name)
    finally:
        stop_server(proc)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_serves(tmp_path, name):
    """Any model (new ones too, without a cache of their own: ``model.score_all``) answers
    recommend, score and similar; KG models completion; top-K equals the model's ranking."""
    folder = write_processed(tmp_path / "d", n_users=12, n_items=16)
    cfg = load_config(raw={"model": name, "data": {"dataset": str(folder), "layout": "processed"}})
    dataset, split = prepare_data(cfg)
    m = build_model(cfg, dataset, split).eval()
    e = Engine(Recommender(m, dataset, split, cfg), name)
    if e.recommends:
        recs = e.recommend_many(["3"], 3, explain=True)[0]
        with torch.no_grad():
            s = m.score_all(torch.tensor([3]))[0].clone()
        s[torch.as_tensor(e.rec.seen(3))] = -torch.inf
        assert [r["item_index"] for r in recs] == torch.topk(s, 3).indices.tolist()
        assert all("lines" in r["explanation"] for r in recs)
        assert len(e.score_pairs(["3"], ["4"])) == 1
    assert len(e.similar("2", 3)) == 3
    if e.completes:
        assert len(e.complete("0", head="1", k=3)) == 3
