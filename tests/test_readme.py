"""Every code block of README.md runs as written.

```bash and ```python blocks run in order, each in its own process, all in one temporary working
directory, with ``KGREC_DATA`` at the real data folder and this checkout's ``kgrec`` first on the
path. Blocks fenced ```bash no-test (install, CI-only, placeholders, long jobs) and ```text /
```console blocks are shown, not run; the main job's command is a no-test block and is run with
one epoch in tests/test_api.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SHOWN_ONLY = {"text", "console"}


def readme_blocks(text: str) -> list[tuple[str, list[str], str]]:
    """``(language, tags, code)`` of every fenced block, in order."""
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).split()
        out.append((info[0] if info else "", info[1:], m.group(2)))
    return out


def runnable(blocks):
    return [(lang, code) for lang, tags, code in blocks
            if lang in ("bash", "python") and "no-test" not in tags]


def test_block_parser():
    text = ("x\n```bash no-test\npip install .\n```\n```bash\nkgrec presets\n```\n"
            "```python\nprint(1)\n```\n```text\nout\n```\n")
    assert runnable(readme_blocks(text)) == [("bash", "kgrec presets\n"), ("python", "print(1)\n")]


def test_every_readme_block_is_tagged():
    blocks = readme_blocks((REPO / "README.md").read_text())
    assert blocks, "README has no code blocks"
    for lang, tags, code in blocks:
        assert lang in {"bash", "python"} | SHOWN_ONLY, f"block without a known language: {code[:60]!r}"
        assert set(tags) <= {"no-test"}, tags
    shown = "".join(code for lang, tags, code in blocks if "no-test" in tags)
    assert "kgrec train mkr-lastfm\n" in shown  # the main job, as a user types it
    assert 'pip install ".[dev]"' in shown
    langs = [lang for lang, _ in runnable(blocks)]
    assert "bash" in langs and "python" in langs


@pytest.mark.slow
def test_readme_code_blocks_run(real_data, tmp_path):
    env = dict(os.environ)
    env["KGREC_DATA"] = str(real_data)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    blocks = runnable(readme_blocks((REPO / "README.md").read_text()))
    for k, (lang, code) in enumerate(blocks):
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, (f"README block {k + 1} ({lang}) failed:\n{code}\n--- stdout:\n"
                                   f"{r.stdout[-2000:]}\n--- stderr:\n{r.stderr[-3000:]}")
    assert (tmp_path / "runs" / "api" / "curves.png").is_file()
    assert (tmp_path / "runs" / "api-copy" / "model.pt").is_file()
