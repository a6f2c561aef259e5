"""Usage errors, bad input and Ctrl-C through ``kgrec.cli.main()``: exit codes, a usage
message, never a traceback."""

from __future__ import annotations

import pytest

from kgrec import cli
from kgrec.errors import DataError


def run_main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


@pytest.mark.parametrize(
    "argv, reason",
    [
        ([], None),  # bare kgrec: the help, exit 2
        (["train"], "Missing argument"),
        (["train", "--bogus", "x"], "No such option: --bogus"),
        (["recommend", "RUN", "-k", "abc"], "Invalid value for '-k'"),
        (["recommend", "RUN"], "Missing option '--user'"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["datasets"], None),
        (["datasets", "info"], "Missing argument"),
        (["reproduce", "mkr", "--seeds", "x"], "Invalid value for '--seeds'"),
    ],
)
def test_usage_errors_exit_2_with_usage(argv, reason, capsys):
    assert run_main(argv) == 2
    out, err = capsys.readouterr()
    text = out + err
    assert "Usage: kgrec" in text
    assert "Traceback" not in text
    if reason is not None:
        assert reason in err


def test_help_exits_0(capsys):
    assert run_main(["train", "--help"]) == 0
    assert "Usage: kgrec train" in capsys.readouterr().out


def test_kgrec_error_is_one_line_exit_2(capsys, tmp_path):
    assert run_main(["train", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'missing.yaml'}: config file not found")
    assert len(err.strip().splitlines()) == 1


def test_data_error_names_where(monkeypatch, capsys):
    def bad(*a, **k):
        raise DataError("ratings.txt", 7, "expected 3 columns, got 2")

    monkeypatch.setattr("kgrec.data.load_dataset", bad)
    assert run_main(["datasets", "info", "x"]) == 2
    assert capsys.readouterr().err.strip() == "error: ratings.txt:7: expected 3 columns, got 2"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, cli.typer.Abort])
def test_ctrl_c_exits_130(monkeypatch, capsys, exc):
    def interrupted(*a, **k):
        raise exc()

    monkeypatch.setattr("kgrec.data.load_dataset", interrupted)
    assert run_main(["datasets", "info", "lastfm"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_success_exits_0(capsys):
    assert run_main(["datasets", "list"]) == 0
    assert "lastfm" in capsys.readouterr().out
