"""Bad token (NER) datasets: each is a problem with its file and line from `data check`, never a crash or a silent loss."""

from __future__ import annotations

import json

import pytest
from badinput import assert_refused, run, workspace  # noqa: F401

SENTENCE = "Taylor\tB-person\nSwift\tI-person\nsings\tO\n\n"
ROW = {"tokens": ["Taylor", "Swift", "sings"], "tags": ["B-person", "I-person", "O"]}


def conll(ws, **files: str | bytes):
    root = ws.root / "ner"
    root.mkdir()
    files = {"train.txt": SENTENCE * 3, "dev.txt": SENTENCE, "test.txt": SENTENCE, **files}
    for name, content in files.items():
        if content is not None:
            (root / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def manifest(ws, extra: str = "", rows: list[dict] | None = None):
    root = ws.root / "ner"
    root.mkdir()
    rows = rows if rows is not None else [dict(ROW, split=s) for s in ("train", "train", "val", "test")]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + extra)
    return root


def test_a_good_conll_folder_passes(ws, capsys):
    result = run(capsys, "data", "check", conll(ws))
    assert result.rc == 0 and "ok (token dataset" in result.out, result.err


@pytest.mark.parametrize("labels,line,says", [
    ("person\nlocati\xf3n\n".encode("latin-1"), 2, "not UTF-8"),
    ("person\n".encode("utf-16"), 1, "UTF-16"),
])
def test_a_labels_txt_that_is_not_utf8_is_a_problem_at_its_line(ws, capsys, labels, line, says):
    result = run(capsys, "data", "check", conll(ws, **{"labels.txt": labels}))
    assert_refused(result, f"labels.txt:{line}:", says)
    assert "not in labels.txt" not in result.out + result.err  # not every tag checked against an empty list


@pytest.mark.parametrize("extra,says", [
    ('{"tokens": ' + "[" * 100000 + "\n", "nested too deeply"),
    ('{"tokens": ["a"], "tags": ["O"], "id": 1' + "0" * 5000 + "}\n", "too many digits"),
    ('{"tokens": ["a"], "tags": ["O"], "tags": ["B-x"], "split": "train"}\n', "key 'tags' appears twice"),
    ('{"tokens": ["a\\ud800"], "tags": ["O"], "split": "train"}\n', "lone surrogate"),
    ('{"tokens": ["a"], "tags": ["O"], "id": [1, 2], "split": "train"}\n', "'id' must be a string"),
])
def test_manifest_rows_that_crashed_or_lost_data_are_problems(ws, capsys, extra, says):
    assert_refused(run(capsys, "data", "check", manifest(ws, extra)), "manifest.jsonl:5:", says)


def test_duplicate_sentence_ids_are_refused(ws, capsys):
    rows = [dict(ROW, split=s, id="same") for s in ("train", "train", "val", "test")]
    assert_refused(run(capsys, "data", "check", manifest(ws, rows=rows)), "manifest.jsonl:2:",
                   "duplicate id 'same' (first used on line 1)")


@pytest.mark.parametrize("files,says", [
    ({"train.txt": ""}, "no train sentences"),
    ({"train.txt": "-DOCSTART- -X- O O\n\n"}, "no train sentences"),
    ({"dev.txt": None}, "no val sentences"),
])
def test_data_check_refuses_what_training_refuses(ws, capsys, files, says):
    data = conll(ws, **files)
    assert_refused(run(capsys, "data", "check", data), "ner", says)
    ws.freeze()
    result = run(capsys, "train", "wnut17_minilm", "--dataset", data, "--epochs", "1", "--out", ws.out)
    assert_refused(result, says, "mmzoo data check")
    ws.assert_unchanged()


def test_entity_types_that_differ_only_in_unicode_normalisation_are_refused(ws, capsys):
    data = conll(ws, **{"train.txt": SENTENCE * 3 + "Paris\tB-caf\u00e9\n\nRome\tB-cafe\u0301\n\n"})
    assert_refused(run(capsys, "data", "check", data), "train.txt:15:", "'cafe\\u0301' differs from 'caf\\xe9'")


def test_a_line_separator_inside_a_token_does_not_shift_line_numbers(ws, capsys):
    data = conll(ws, **{"train.txt": "a\u2028b\tO\n\n" + SENTENCE + "x\tB-\n\n"})
    result = run(capsys, "data", "check", data)
    assert_refused(result, "train.txt:7:", "tag 'B-' is outside the BIO scheme")
