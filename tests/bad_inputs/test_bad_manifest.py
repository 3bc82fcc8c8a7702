"""Bad dataset folders: every one is a problem with its file and line; data that cannot train honestly is refused."""

from __future__ import annotations

import json

import pytest
from badinput import assert_refused, run, workspace  # noqa: F401
from PIL import Image


def folder(ws, rows: list[dict] | None = None, *, images: int = 4, name: str = "data"):
    """A dataset folder with ``images`` tiny PNGs (img/0.png ...) and, when given, manifest.jsonl rows."""
    root = ws.root / name
    (root / "img").mkdir(parents=True)
    for i in range(images):
        Image.new("RGB", (4, 4), (40 * i, 0, 0)).save(root / "img" / f"{i}.png")
    if rows is not None:
        (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def rows(n: int, labels=("cat", "dog"), split=None) -> list[dict]:
    out = [{"text": f"t{i}", "image": f"img/{i % 4}.png", "label": labels[i % len(labels)]} for i in range(n)]
    for i, row in enumerate(out):
        if split:
            row["split"] = split(i)
    return out


SPLIT_ALL = lambda i: ("train", "train", "val", "val", "test", "test")[i % 6]  # noqa: E731


def test_a_good_folder_passes(ws, capsys):
    data = folder(ws, rows(12, split=SPLIT_ALL))
    result = run(capsys, "data", "check", data)
    assert result.rc == 0 and "ok" in result.out, result.err


@pytest.mark.parametrize("image", ["../outside.png", "img/../../outside.png"])
def test_image_paths_climbing_out_are_refused_with_their_line(ws, capsys, image):
    Image.new("RGB", (4, 4)).save(ws.root / "outside.png")
    data = folder(ws, rows(12, split=SPLIT_ALL)[:2] + [{"text": "x", "image": image, "label": "cat"}])
    ws.freeze()
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:3:", "outside the dataset folder")
    ws.assert_unchanged()


def test_absolute_image_paths_are_refused(ws, capsys):
    Image.new("RGB", (4, 4)).save(ws.root / "outside.png")
    data = folder(ws, [{"text": "x", "image": str(ws.root / "outside.png"), "label": "cat"}])
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:1:", "outside the dataset folder")


def test_symlinks_out_of_the_folder_are_refused_but_inside_ones_are_fine(ws, capsys, monkeypatch):
    Image.new("RGB", (4, 4)).save(ws.root / "outside.png")
    data = folder(ws, rows(12, split=SPLIT_ALL))
    (data / "img" / "out.png").symlink_to(ws.root / "outside.png")
    (data / "img" / "in.png").symlink_to(data / "img" / "0.png")
    lines = rows(12, split=SPLIT_ALL)
    lines[4]["image"], lines[5]["image"] = "img/out.png", "img/in.png"
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    result = run(capsys, "data", "check", data)
    assert_refused(result, "manifest.jsonl:5:", "outside the dataset folder")
    assert "manifest.jsonl:6:" not in result.err + result.out
    monkeypatch.setenv("MMZOO_ALLOW_IMAGES_OUTSIDE", "1")  # the documented way to mean it
    assert run(capsys, "data", "check", data).rc == 0


@pytest.mark.parametrize("raw,line,says", [
    ('{"text": "a", "image": "img/0.png", "label": "cat"}\n'.encode("utf-16"), 1, "UTF-16"),
    (b'{"text": "a", "image": "img/0.png", "label": "cat"}\n{"text": "b", "image": "img/1.png", '
     b'"label": "d\xf6g"}\n', 2, "not UTF-8"),
    (b'{"text": "a", "image": "img/0.png", "label": ' + b"[" * 100000 + b"\n", 1, "nested too deeply"),
])
def test_undecodable_or_deep_jsonl_is_a_line_numbered_problem(ws, capsys, raw, line, says):
    data = folder(ws)
    (data / "manifest.jsonl").write_bytes(raw)
    assert_refused(run(capsys, "data", "check", data), f"manifest.jsonl:{line}:", says)


def test_an_unterminated_csv_quote_is_reported_where_it_starts(ws, capsys):
    data = folder(ws)
    (data / "manifest.csv").write_text('text,image,label\na,img/0.png,cat\n"b,img/1.png,dog\nc,img/2.png,cat\n')
    assert_refused(run(capsys, "data", "check", data), "manifest.csv:3:", "never closed")


def test_a_utf16_labels_file_is_a_problem(ws, capsys):
    data = folder(ws, rows(12, split=SPLIT_ALL))
    (data / "labels.txt").write_bytes("cat\ndog\n".encode("utf-16"))
    assert_refused(run(capsys, "data", "check", data), "labels.txt:1:", "UTF-16")


@pytest.mark.parametrize("case,says", [
    ("one class", "1 class (only 'cat')"),
    ("no val", "the val split is empty"),
    ("no test", "the test split is empty"),
])
def test_data_that_cannot_be_evaluated_is_reported_and_refused_by_train(ws, capsys, case, says):
    lines = {
        "one class": rows(12, labels=("cat",), split=SPLIT_ALL),
        "no val": rows(12, split=lambda i: "train" if i % 2 == 0 or i < 4 else "test"),
        "no test": rows(12, split=lambda i: ("train", "train", "val", "val")[i % 4]),
    }[case]
    data = folder(ws, lines)
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:", says)
    ws.freeze()
    result = run(capsys, "train", "digits_text", "--dataset", data, "--epochs", "1", "--out", ws.out)
    assert_refused(result, "cannot be trained and evaluated honestly", says, "mmzoo data check")
    assert not ws.out.exists()
    ws.assert_unchanged()


def test_a_label_only_in_test_is_a_warning(ws, capsys):
    lines = rows(12, split=SPLIT_ALL) + [{"text": "x", "image": "img/0.png", "label": "bird", "split": "test"}]
    data = folder(ws, lines)
    result = run(capsys, "data", "check", data)
    assert result.rc == 0 and "Traceback" not in result.err
    assert "warning: label(s) 'bird' occur in test but never in train" in result.out
    assert "ok (1 warning(s))" in result.out and "splits: train 4, val 4, test 5" in result.out


def test_a_class_missing_from_test_is_a_warning_with_the_counts(ws, capsys):
    lines = rows(12, split=SPLIT_ALL) + [{"text": "x", "image": "img/0.png", "label": "bird", "split": s}
                                         for s in ("train", "val")]
    result = run(capsys, "data", "check", folder(ws, lines))
    assert result.rc == 0 and "Traceback" not in result.err
    assert "class(es) 'bird' have train rows but none in test" in result.out
    assert "none in val" not in result.out and "ok (1 warning(s))" in result.out


def test_the_trainer_refuses_a_one_class_dataset_from_the_library_too(ws):
    from mmzoo.data import Dataset, Sample
    from mmzoo.data.checks import require_trainable
    from mmzoo.errors import DataError

    samples = [Sample(str(i), "t", None, {"y": "a"}, split) for i, split in enumerate(("train", "val", "test"))]
    with pytest.raises(DataError, match="only 'a'"):
        require_trainable(Dataset("one", samples, {"y": ["a"]}, "y"))


def test_a_truncated_jpeg_is_a_problem_at_check_time_not_a_crash_in_training(ws, capsys):
    import io

    import numpy as np

    data = folder(ws, rows(12, split=SPLIT_ALL))
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "JPEG")
    (data / "img" / "1.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # verify() passes it
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:2:", "img/1.png", "truncated")
    ws.freeze()
    # opening a dataset only verifies structure (decoding every image on every open costs 20x more); the
    # trainer's decode then names the file instead of crashing
    result = run(capsys, "train", "digits_image", "--dataset", data, "--epochs", "1", "--out", ws.out)
    assert_refused(result, "img/1.png", "could not be decoded", "mmzoo data check")
    ws.assert_unchanged()


@pytest.mark.parametrize("extra,says", [
    ('{"text": "x", "image": "img/0.png", "label": "cat", "label": "dog"}', "key 'label' appears twice"),
    ('{"text": "a\\ud800", "image": "img/0.png", "label": "cat"}', "lone surrogate"),
    ('{"text": "x", "image": "img/0.png", "label": "cat", "id": 1' + "0" * 5000 + "}", "too many digits"),
])
def test_json_rows_that_would_lose_data_or_crash_later_are_problems(ws, capsys, extra, says):
    data = folder(ws, rows(12, split=SPLIT_ALL))
    with open(data / "manifest.jsonl", "a") as fh:
        fh.write(extra + "\n")
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:13:", says)


def test_a_raw_line_separator_inside_a_json_string_keeps_the_line_numbers(ws, capsys):
    lines = rows(12, split=SPLIT_ALL)
    lines[0]["text"] = "one\u2028two\x85three"  # str.splitlines() would break the row (and every later number)
    lines[5]["label"] = ""
    data = folder(ws)
    (data / "manifest.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    result = run(capsys, "data", "check", data)
    assert_refused(result, "manifest.jsonl:6:", "label is empty")
    assert "bad JSON" not in result.out + result.err


@pytest.mark.parametrize("content,line,says", [
    ("text,image,label,label\na,img/0.png,cat,dog\n", 1, "'label' appear more than once"),
    ("", 1, "the file is empty"),
    ("\n\ntext,image,label\n", 1, "the first line is empty"),
    ("text;image;label\na;img/0.png;cat\n", 1, "must be comma-separated"),
])
def test_csv_headers_that_would_drop_or_misread_columns_are_refused(ws, capsys, content, line, says):
    data = folder(ws)
    (data / "manifest.csv").write_text(content)
    assert_refused(run(capsys, "data", "check", data), f"manifest.csv:{line}:", says)


@pytest.mark.parametrize("twin", ["cat ", "cafe\u0301"])
def test_labels_that_look_alike_but_differ_are_refused_not_split_into_two_classes(ws, capsys, twin):
    lines = rows(12, labels=("cat" if twin == "cat " else "caf\u00e9", "dog"), split=SPLIT_ALL)
    lines.append({"text": "x", "image": "img/0.png", "label": twin, "split": "train"})
    data = folder(ws, lines)
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:13:", ascii(twin), "only in surrounding "
                   "spaces or Unicode normalisation")


def test_a_label_differing_from_labels_txt_only_invisibly_says_so(ws, capsys):
    data = folder(ws, rows(12, labels=("cafe\u0301", "dog"), split=SPLIT_ALL))
    (data / "labels.txt").write_text("caf\u00e9\ndog\n")
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:1:", "unknown label", "in labels.txt only in")
    (data / "labels.txt").write_text("caf\u00e9\ndog\ncafe\u0301\n")
    assert_refused(run(capsys, "data", "check", data), "labels.txt:3:", "above only in")


def test_symlink_loops_are_named_not_a_crash(ws, capsys):
    (ws.root / "loop_a").symlink_to(ws.root / "loop_b")
    (ws.root / "loop_b").symlink_to(ws.root / "loop_a")
    assert_refused(run(capsys, "data", "check", ws.root / "loop_a"), "loop_a", "cannot be resolved")
    data = folder(ws, rows(12, split=SPLIT_ALL))
    (data / "img" / "x.png").symlink_to(data / "img" / "y.png")
    (data / "img" / "y.png").symlink_to(data / "img" / "x.png")
    lines = rows(12, split=SPLIT_ALL)
    lines[2]["image"] = "img/x.png"
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert_refused(run(capsys, "data", "check", data), "manifest.jsonl:3:", "img/x.png", "not usable")
    registry = ws.write("r.yaml", "models:\n  m:\n    text: small_text\n    task: {dataset: ./loop_a}\n")
    assert_refused(run(capsys, "validate", registry), "r.yaml:4:", "'./loop_a' cannot be resolved")
