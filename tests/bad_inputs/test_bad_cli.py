"""Bad command-line values are usage errors naming the flag; an unexpected exception is one line and a log file."""

from __future__ import annotations

import pytest
from badinput import assert_refused, run, workspace  # noqa: F401

import mmzoo.cli.zoo


@pytest.mark.parametrize("argv,flag,says", [
    (["train", "digits_text", "--lr", "nan"], "--lr", "finite"),
    (["train", "digits_text", "--lr", "inf"], "--lr", "finite"),
    (["train", "digits_text", "--lr", "0"], "--lr", "must be > 0"),
    (["train", "digits_text", "--epochs", "-3"], "--epochs", "must be 1 to 100000, got -3"),
    (["train", "digits_text", "--batch-size", "0"], "--batch-size", "got 0"),
    (["train", "digits_text", "--seed", "-1"], "--seed", "got -1"),
    (["train", "digits_text", "--epochs", "many"], "--epochs", "expected int"),
    (["ensemble", "digits_pair", "--epochs", "0"], "--epochs", "got 0"),
    (["ensemble", "--runs", "a", "b", "--name", "../../x"], "--name", "not a safe name"),
    (["ensemble", "--runs", "a", "b", "--name", "/tmp/x"], "--name", "not a safe name"),
    (["export", "x", "-o", "out", "--samples", "0"], "--samples", "must be 1 to"),
    (["export", "x", "-o", "out", "--opset", "-1"], "--opset", "must be 7 to 30"),
    (["predict", "x.onnx", "--top-k", "0"], "--top-k", "must be 1 to"),
    (["bench", "x", "--threads", "0"], "--threads", "must be 1 to"),
])
def test_out_of_range_flags_are_usage_errors(ws, capsys, argv, flag, says):
    ws.freeze()
    result = run(capsys, *argv, "--out", ws.out) if argv[0] in ("train", "ensemble") else run(capsys, *argv)
    assert_refused(result, flag, says, rc=2)
    assert not ws.out.exists()
    ws.assert_unchanged()


@pytest.mark.parametrize("flag,value", [("--cpus-per-member", "nan"), ("--cpus-per-member", "0"),
                                        ("--gpus-per-member", "-1"), ("--gpus-per-member", "inf")])
def test_ray_resource_flags_are_refused_before_ray_starts(ws, capsys, flag, value):
    ws.freeze()
    result = run(capsys, "ensemble", "digits_pair", "--executor", "ray", flag, value, "--out", ws.out)
    assert_refused(result, "positive CPU count", "per member")
    assert not ws.out.exists()
    ws.assert_unchanged()


def test_an_unexpected_exception_is_one_line_and_a_log_file(ws, capsys, monkeypatch, tmp_path):
    def broken(args):
        raise KeyError("deliberately broken handler")

    monkeypatch.setattr(mmzoo.cli.zoo, "cmd_list", broken)
    result = run(capsys, "list")
    assert result.rc == 70
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    assert lines[0].startswith("mmzoo: internal error in `mmzoo list` (KeyError at ")
    assert "please report" in lines[0]
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    text = logs[0].read_text()
    assert "Traceback" in text and "deliberately broken handler" in text and "mmzoo list" in text


def test_mmzoo_debug_shows_the_traceback(ws, capsys, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("deliberately broken handler")

    monkeypatch.setattr(mmzoo.cli.zoo, "cmd_list", broken)
    monkeypatch.setenv("MMZOO_DEBUG", "1")
    result = run(capsys, "list")
    assert result.rc == 70
    assert "Traceback" in result.err and "deliberately broken handler" in result.err
    assert result.err.strip().splitlines()[-1].startswith("mmzoo: internal error in `mmzoo list`")


def test_an_unwritable_log_folder_still_shows_the_traceback(ws, capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("deliberately broken handler")

    blocker = ws.write("not-a-folder", "x")
    monkeypatch.setenv("MMZOO_LOG_DIR", str(blocker / "logs"))
    monkeypatch.setattr(mmzoo.cli.zoo, "cmd_list", broken)
    result = run(capsys, "list")
    assert result.rc == 70 and "Traceback" in result.err and "could not be written" in result.err


def test_text_that_is_not_utf8_is_a_usage_error_naming_the_flag(ws, capsys):
    result = run(capsys, "predict", "x.onnx", "--text", "caf\udce9")  # how Python passes the byte 0xe9 of argv
    assert_refused(result, "--text", "not UTF-8 text", "0xe9", rc=2)


def test_the_library_names_text_it_cannot_tokenize(ws):
    from mmzoo.data.preprocess import TextPreprocessor, char_tokenizer_json
    from mmzoo.errors import DataError

    prep = TextPreprocessor(char_tokenizer_json(), max_length=8)
    assert prep(["fine"])["input_ids"].shape[0] == 1
    with pytest.raises(DataError, match=r"text 2 .*lone surrogate"):
        prep(["fine", "bad\ud800"])  # the tokenizers library raised a bare TypeError


def test_a_crash_log_is_written_even_when_argv_is_not_utf8(ws, capsys, monkeypatch, tmp_path):
    def broken(args):
        raise RuntimeError("deliberately broken handler")

    monkeypatch.setattr(mmzoo.cli.zoo, "cmd_list", broken)
    result = run(capsys, "list", "models", "caf\udce9")
    assert result.rc == 70 and "Traceback" not in result.err, result.err
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and "deliberately broken handler" in logs[0].read_text()
