"""glibc's allocator setting (kgrec.runtime): applied for the compute commands, a no-op when
the user opts out or the C library is not glibc; ``serve`` leaves it alone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kgrec import runtime
from kgrec.errors import ConfigError
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Allocates and frees 256 MiB through malloc, then reports the resident size: glibc's
# default serves a block that large with mmap and unmaps it on free; tuned, it stays.
PROBE = """
import ctypes, json, sys
from kgrec.runtime import tune_allocator
setting = tune_allocator()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = 256 << 20
p = libc.malloc(n)
ctypes.memset(p, 1, n)
libc.free(p)
pages = int(open("/proc/self/statm").read().split()[1])
import os
print(json.dumps({"applied": setting.applied, "reason": setting.reason,
                  "rss_mib": pages * os.sysconf("SC_PAGE_SIZE") / 2**20}))
"""


def probe(**env) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", runtime.ENV_VAR)}
    clean["PYTHONPATH"] = str(REPO / "src")
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       env={**clean, **env}, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_applies_on_glibc_and_freed_memory_stays():
    tuned, default = probe(), probe(KGREC_MALLOC="default")
    assert tuned["applied"] and "M_MMAP_MAX=0" in tuned["reason"]
    assert not default["applied"] and default["reason"] == "KGREC_MALLOC=default"
    # the freed 256 MiB block is kept (resident) only when tuned
    assert tuned["rss_mib"] - default["rss_mib"] > 200, (tuned, default)


@pytest.mark.parametrize("environ, reason", [
    ({"KGREC_MALLOC": "default"}, "KGREC_MALLOC=default"),
    ({"KGREC_MALLOC": " Default "}, "KGREC_MALLOC=default"),
    ({"MALLOC_ARENA_MAX": "2"}, "MALLOC_ARENA_MAX is set in the environment"),
    ({"MALLOC_MMAP_MAX_": "0", "KGREC_MALLOC": "tuned"}, "MALLOC_MMAP_MAX_ is set in the environment"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, "GLIBC_TUNABLES is set in the environment"),
])
def test_opt_outs_leave_the_allocator_alone(monkeypatch, environ, reason):
    monkeypatch.setattr(runtime, "_glibc", lambda: pytest.fail("the C library was consulted"))
    assert runtime.tune_allocator(environ) == runtime.AllocatorSetting(False, reason)


def test_the_outcome_is_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_last", None)
    with caplog.at_level("INFO", logger="kgrec"):
        for _ in range(2):
            runtime.tune_allocator({"KGREC_MALLOC": "default"})
    assert [r.getMessage() for r in caplog.records] == [
        "allocator: glibc's defaults (KGREC_MALLOC=default)"]


def test_other_c_libraries_are_a_no_op(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.tune_allocator({}) == runtime.AllocatorSetting(False, "the C library is not glibc")


def test_a_bad_opt_out_value_is_a_config_error():
    with pytest.raises(ConfigError, match="KGREC_MALLOC='off': expected one of tuned, default"):
        runtime.tune_allocator({"KGREC_MALLOC": "off"})


@pytest.fixture
def calls(monkeypatch) -> list:
    seen: list = []
    monkeypatch.setattr(runtime, "tune_allocator",
                        lambda environ=None: seen.append(1) or runtime.AllocatorSetting(False, "test"))
    return seen


def test_cli_train_tunes_the_allocator(calls, tiny_processed, tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": "mkr", "model_args": {"dim": 4, "n_low_layers": 1},
        "data": {"dataset": str(tiny_processed), "layout": "processed"},
        "train": {"epochs": 1, "batch_size": 32, "threads": 1}}))
    code, out, err = run_cli(monkeypatch, capsys, "train", cfg, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    assert "test auc=" in out and calls == [1]


def test_cli_reproduce_and_tune_tune_the_allocator(calls, monkeypatch, capsys):
    import kgrec.reproduce
    import kgrec.tuning

    monkeypatch.setattr(kgrec.reproduce, "reproduce", lambda *a, **k: "TABLE")
    monkeypatch.setattr(kgrec.tuning, "tune", lambda *a, **k: {"trials": 0})
    code, out, err = run_cli(monkeypatch, capsys, "reproduce", "mkr", "--seeds", 1)
    assert (code, out.strip()) == (0, "TABLE"), err
    code, out, err = run_cli(monkeypatch, capsys, "tune", "mkr-lastfm", "--trials", 1)
    assert code == 0 and "no complete trial" in out, err
    assert calls == [1, 1]


def test_cli_bad_opt_out_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("KGREC_MALLOC", "off")
    code, _, err = run_cli(monkeypatch, capsys, "reproduce", "mkr")
    assert code == 2 and "error: KGREC_MALLOC='off'" in err


def test_serve_leaves_the_allocator_alone(calls, monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "serve", tmp_path / "none")
    assert code == 2 and "checkpoint not found" in err
    assert calls == []


def test_python_api_train_tunes_the_allocator(calls, tiny_processed, tmp_path):
    import kgrec

    kgrec.train({"model": "mkr", "model_args": {"dim": 4, "n_low_layers": 1},
                 "data": {"dataset": str(tiny_processed), "layout": "processed"},
                 "train": {"epochs": 1, "batch_size": 32, "threads": 1}},
                out=tmp_path / "run", progress=False)
    assert calls == [1]
