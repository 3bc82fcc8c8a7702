"""Provides user datasets: a folder with manifest.jsonl or manifest.csv, checked row by row.

The format is documented in docs/data.md: required ``text``, ``image``, ``label``; optional
``id``, ``split`` and ``group`` (rows sharing a group are near-duplicates and are never split apart).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mmzoo.data import SPLITS, Dataset, Sample
from mmzoo.data.autosplit import assign_splits
from mmzoo.data.checks import split_findings
from mmzoo.errors import DataError
from mmzoo.textfile import decode, json_row, numbered_lines

MANIFESTS = ("manifest.jsonl", "manifest.csv")
REQUIRED = ("text", "image", "label")
# Image paths must stay inside the dataset folder (no '..', absolute paths or symlinks out) unless this is "1".
ALLOW_OUTSIDE = "MMZOO_ALLOW_IMAGES_OUTSIDE"
HONESTY = "dataset"  # Problem.field of the whole-dataset findings of mmzoo.data.checks


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a user dataset; ``line`` is 1-based, 0 for the whole file."""

    file: str
    line: int
    field: str
    message: str
    severity: str = "error"  # "warning": reported by `mmzoo data check`, but the data can still be used

    def __str__(self) -> str:
        message = f"warning: {self.message}" if self.severity == "warning" else self.message
        return f"{self.file}:{self.line}: {message}" if self.line else f"{self.file}: {message}"


@dataclass
class _Row:
    line: int
    id: str
    text: str
    image: Path
    label: str
    split: str  # "" means: assign one automatically
    group: str = ""  # "" means: the row is its own group


def format_problems(problems: list[Problem]) -> str:
    """One line per problem, e.g. ``manifest.jsonl:7: image 'x.png' not found (looked in /data)``."""
    return "\n".join(str(p) for p in problems)


def resolve_folder(path: str | Path) -> Path:
    """``path`` resolved, or a DataError naming it: a symlink loop raises RuntimeError, a NUL byte ValueError."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(f"dataset folder {path} cannot be resolved: {exc}",
                        hint="pass a folder that exists (a symlink that leads back to itself never does)") from None


def _manifest(folder: Path) -> Path:
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} does not exist or is not a folder",
                        hint="pass the folder that holds manifest.jsonl or manifest.csv")
    found = [folder / m for m in MANIFESTS if (folder / m).is_file()]
    if not found:
        raise DataError(f"no manifest.jsonl or manifest.csv in {folder}",
                        hint="add one with a row per sample: text, image (path relative to the folder), label")
    if len(found) > 1:
        raise DataError(f"{folder} has both manifest.jsonl and manifest.csv",
                        hint="keep one of them so it is clear which is the dataset")
    return found[0]


def _records(path: Path, problems: list[Problem], absent: set[str]):
    """Yield (line, dict) per data row; unparsable lines become problems, missing CSV columns go in ``absent``."""
    name = path.name
    text, bad_line, why = decode(path.read_bytes())
    if text is None:
        problems.append(Problem(name, bad_line, "", why))
        return
    if path.suffix == ".csv":
        # strict: a quote that is never closed is an error, not a cell that swallows the rest of the file
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        start = 1
        try:
            header = [h.strip() for h in next(reader, [])]
            if not any(header):
                what = "the file is empty" if not text.strip() else "the first line is empty"
                problems.append(Problem(name, 1, "", f"{what}; the first line must be the header row naming the "
                                                     "columns: text,image,label (and optionally id,split,group)"))
                return
            twice = sorted({h for h in header if h and header.count(h) > 1})
            if twice:  # zip() into a dict would keep the last of them and drop the others' cells without a word
                problems.append(Problem(name, 1, twice[0], f"column(s) {', '.join(repr(h) for h in twice)} appear "
                                                           "more than once in the header; keep one of each"))
                return
            if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
                problems.append(Problem(name, 1, "", f"the header {header[0]!r} is one column: manifest.csv must be "
                                                     "comma-separated (save it as CSV with commas)"))
                return
            for column in REQUIRED:
                if column not in header:
                    absent.add(column)
                    problems.append(Problem(name, 1, column, f"missing required column '{column}' "
                                                              f"(columns found: {', '.join(header) or 'none'})"))
            start = reader.line_num + 1
            for cells in reader:
                line, start = start, reader.line_num + 1  # a quoted cell may span several lines
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) > len(header):
                    problems.append(Problem(name, line, "", f"row has {len(cells)} cells but the header has "
                                                            f"{len(header)}"))
                # A short row's missing cells stay absent, so they read as "missing", not "empty".
                yield line, dict(zip(header, cells, strict=False))
        except csv.Error as e:
            message = (f"a quote opened in the row starting on line {start} is never closed, so the rest of the file "
                       "would be one cell; close it or double it (\"\") inside a quoted cell"
                       if "end of data" in str(e) else f"malformed CSV: {e}")
            problems.append(Problem(name, start, "", message))
        return
    for number, line in numbered_lines(text):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        record, why = json_row(line)
        if why:
            problems.append(Problem(name, number, "", why))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(name, number, "", f"expected a JSON object, got {type(record).__name__}"))
            continue
        yield number, {k: v for k, v in record.items() if v is not None}


def _text_value(record: dict, key: str, name: str, line: int, problems: list[Problem],
                absent: set[str] = frozenset()) -> str | None:
    value = record.get(key)
    if value is None:
        if key in absent:  # already reported once for the whole file
            return None
        problems.append(Problem(name, line, key, f"missing '{key}'"))
        return None
    # JSON numbers are fine as labels and ids ("label": 3); booleans and lists are mistakes. JSON has one number
    # type, so 1.0 (as pandas writes an integer column that had a gap) is the class "1", like 1; NaN is no class.
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problems.append(Problem(name, line, key, f"'{key}' must be a string, got {json.dumps(value)}"))
        return None
    return str(value)


def check_image(folder: Path, image: str, name: str, line: int, problems: list[Problem], *,
                decode: bool = False) -> Path | None:
    """The image's path when it is usable (inside ``folder``, a readable picture), else None and a problem.

    ``decode`` (``mmzoo data check``) also decodes the picture; opening a dataset for training only
    verifies its structure, since decoding costs 20x more (7 ms a 384 px PNG) on every open.
    """
    from PIL import Image

    if not image.strip():
        problems.append(Problem(name, line, "image", "image is empty"))
        return None
    try:
        path = folder / image
        inside = path.resolve().is_relative_to(folder) and not Path(image).is_absolute()
        path.exists()
    except (ValueError, OSError, RuntimeError) as e:  # a NUL byte, a name too long, a symlink loop (RuntimeError)
        problems.append(Problem(name, line, "image", f"image path {image!r} is not usable: {e}"))
        return None
    if not inside and os.environ.get(ALLOW_OUTSIDE) != "1":
        problems.append(Problem(name, line, "image", f"image {image!r} is outside the dataset folder {folder} "
                                                     f"(absolute, '..' or a symlink out); give a path inside it, or "
                                                     f"set {ALLOW_OUTSIDE}=1 if you mean it"))
        return None
    if not path.exists():
        problems.append(Problem(name, line, "image", f"image '{image}' not found (looked in {folder})"))
        return None
    if not path.is_file():
        problems.append(Problem(name, line, "image", f"image '{image}' is not a file"))
        return None
    try:
        with Image.open(path) as img:
            img.verify()
        # verify() checks structure only: a JPEG cut short passes it and then fails when training decodes it
        # (there mmzoo.data.preprocess.open_image names the file). Decoding it here, at 1/8 scale where the
        # format allows (the whole stream is still read), catches that before any training starts.
        if decode:
            with Image.open(path) as img:
                img.draft(img.mode, (1, 1))
                img.load()
    except Exception as e:  # Pillow raises many types for broken files; all mean "unreadable"
        problems.append(Problem(name, line, "image", f"image '{image}' could not be read: {e}"))
        return None
    return path


def label_key(label: str) -> str:
    """What a reader sees: two labels with one key look identical but would be two classes."""
    return unicodedata.normalize("NFC", label).strip()


def _twin_note(label: str, twin: str, where: str = "") -> str:
    # ascii() shows what the eye cannot: 'cafe\u0301' against 'caf\xe9', or a trailing space
    return (f"label {ascii(label)} differs from {ascii(twin)}{where} only in surrounding spaces or Unicode "
            "normalisation, so the two would be separate classes; write every label the same way")


def _labels_file(folder: Path, problems: list[Problem]) -> list[str] | None:
    path = folder / "labels.txt"
    if not path.is_file():
        return None
    labels: list[str] = []
    text, bad_line, why = decode(path.read_bytes())
    if text is None:
        problems.append(Problem("labels.txt", bad_line, "", why))
        return None
    for number, line in numbered_lines(text):
        label = line.strip()
        if not label:
            continue
        if label in labels:
            problems.append(Problem("labels.txt", number, "label", f"label '{label}' is listed twice"))
            continue
        twin = next((x for x in labels if label_key(x) == label_key(label)), None)
        if twin is not None:
            problems.append(Problem("labels.txt", number, "label", _twin_note(label, twin, " above")))
            continue
        labels.append(label)
    if not labels:
        problems.append(Problem("labels.txt", 0, "label", "labels.txt lists no labels (one class per line)"))
    return labels


def _scan(folder: Path, decode: bool = False) -> tuple[list[_Row], list[str], list[Problem], Path]:
    """Parse and check everything, collecting every problem rather than stopping at the first."""
    folder = resolve_folder(folder)
    path = _manifest(folder)
    name = path.name
    problems: list[Problem] = []
    allowed = _labels_file(folder, problems)
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    looks: dict[str, tuple[str, int]] = {}  # label_key -> the first spelling of that label and its line
    absent: set[str] = set()
    for line, record in _records(path, problems, absent):
        bad = len(problems)
        text = _text_value(record, "text", name, line, problems, absent)
        if text is not None and not text.strip():
            problems.append(Problem(name, line, "text", "text is empty"))
        label = _text_value(record, "label", name, line, problems, absent)
        if label is not None and not label.strip():
            problems.append(Problem(name, line, "label", "label is empty"))
        elif label is not None and allowed is not None and label not in allowed:
            twin = next((a for a in allowed if label_key(a) == label_key(label)), None)
            problems.append(Problem(name, line, "label", f"unknown label {label!r} (labels.txt lists: "
                                                          f"{', '.join(allowed)})" +
                                    (f"; {_twin_note(label, twin, ' in labels.txt')}" if twin else "")))
        elif label is not None:
            first, first_line = looks.setdefault(label_key(label), (label, line))
            if first != label:
                problems.append(Problem(name, line, "label", _twin_note(label, first, f" on line {first_line}")))
        image = _text_value(record, "image", name, line, problems, absent)
        image_path = check_image(folder, image, name, line, problems, decode=decode) if image is not None else None
        split = record.get("split", "")  # empty means: assign one
        if split not in ("", *SPLITS):
            problems.append(Problem(name, line, "split", f"bad split {json.dumps(split)}: use train, val or test, "
                                                          "or leave it empty to have one assigned"))
        has_id = record.get("id", "") != ""
        sample_id = _text_value(record, "id", name, line, problems) if has_id else f"line-{line}"
        if sample_id is not None:
            if sample_id in seen:
                problems.append(Problem(name, line, "id", f"duplicate id '{sample_id}' (first used on line "
                                                           f"{seen[sample_id]})"))
            else:
                seen[sample_id] = line
        group = _text_value(record, "group", name, line, problems) if record.get("group", "") != "" else ""
        if len(problems) == bad:
            rows.append(_Row(line, sample_id, text, image_path, label, split, group or ""))
    _check_group_splits(rows, name, problems)
    if not problems and not rows:
        problems.append(Problem(name, 0, "", "the manifest has no rows"))
    classes = allowed if allowed is not None else sorted({r.label for r in rows})
    if rows and not problems:  # once every row is fine: can the whole be trained and evaluated honestly?
        auto = assign_splits(rows)
        by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
        for r in rows:
            by_split[r.split or auto[r.id]].append(r.label)
        for finding in split_findings(by_split, classes):
            problems.append(Problem(name, 0, HONESTY, finding.message, finding.severity))
    return rows, classes, problems, folder


def _check_group_splits(rows: list[_Row], name: str, problems: list[Problem]) -> None:
    """A group's explicit splits must agree: near-duplicates on both sides of a split leak."""
    first: dict[str, _Row] = {}
    for r in rows:
        if not r.group or not r.split:
            continue
        seen = first.setdefault(r.group, r)
        if seen.split != r.split:
            problems.append(Problem(name, r.line, "split", f"group '{r.group}' is in split '{seen.split}' on line "
                                                           f"{seen.line} but in '{r.split}' here; give every row of "
                                                           "a group the same split, or leave split empty"))


def check_folder(path: str | Path) -> list[Problem]:
    """Every problem in a user dataset folder, in file order; empty when it is ready to use."""
    return _scan(Path(path), decode=True)[2]


def load_manifest(path: str | Path) -> Dataset:
    """Load a checked user dataset folder; raises DataError pointing at ``mmzoo data check``."""
    rows, classes, problems, folder = _scan(Path(path))
    # Whether the data can be trained on honestly is the trainer's question (mmzoo.data.checks): a folder
    # of test rows alone is still fine to predict on.
    problems = [p for p in problems if p.severity == "error" and p.field != HONESTY]
    if problems:
        first = format_problems(problems[:1])
        raise DataError(
            f"dataset {folder} has {len(problems)} problem{'s' if len(problems) != 1 else ''} (first: {first})",
            hint=f"run `mmzoo data check {path}` to see the full report",
        )
    auto = assign_splits(rows)
    digest = hashlib.sha256(b"manifest\0" + "\0".join(classes).encode() + b"\0")
    samples = []
    for r in rows:
        split = r.split or auto[r.id]
        image_hash = hashlib.sha256(r.image.read_bytes()).hexdigest()
        fields = [r.id, r.text, r.label, split, image_hash] + ([r.group] if r.group else [])
        digest.update(json.dumps(fields).encode() + b"\n")
        samples.append(Sample(id=r.id, text=r.text, image=str(r.image), labels={"label": r.label}, split=split,
                              group=r.group))
    return Dataset(
        name=folder.name,
        samples=samples,
        label_sets={"label": classes},
        default_label_set="label",
        source=str(folder),
        fingerprint=digest.hexdigest()[:16],
        extra={"root": str(folder)},
    )
