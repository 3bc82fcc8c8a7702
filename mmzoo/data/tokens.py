"""Provides token datasets: CoNLL folders and manifest.jsonl rows of tokens and tags, checked line by line.

A CoNLL folder holds files whose names say their split (``train``, ``dev``/``val``, ``test``):
one ``token<TAB or spaces>tag`` per line (with more columns, the first is the token and the last
the tag), a blank line between sentences, ``-DOCSTART-`` lines skipped. A manifest.jsonl row is
``{"tokens": [...], "tags": [...], "image": optional path, "split": optional, "id": optional}``.
An optional ``labels.txt`` declares the entity types (``person`` or ``B-person`` lines).

Problems are errors (the dataset is refused) except an ``I-X`` that continues no ``X`` entity:
it is repaired to ``B-X`` (the entity conlleval would read) and reported as a note. Tags in the
BIOES or BILOU scheme are read as BIO with the same entities (one note says so); models always
predict BIO.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from mmzoo.data import bio
from mmzoo.data.manifest import Problem, check_image, label_key, resolve_folder
from mmzoo.errors import DataError
from mmzoo.textfile import json_row, numbered_lines
from mmzoo.zoo.partbuild import expect
from mmzoo.zoo.token_schema import TASK

SPLIT_WORDS = (("train", "train"), ("dev", "val"), ("valid", "val"), ("val", "val"), ("test", "test"))
SKIPPED = (".md", ".json", ".yaml", ".yml", ".py")
WNUT17 = Path(__file__).resolve().parent.parent / "datasets" / "wnut17"
OTHER_PREFIXES = {"BIOES": "S- and E- tags", "BILOU": "U- and L- tags"}
READ_AS = {"BIOES": "S-X as B-X, E-X as I-X", "BILOU": "U-X as B-X, L-X as I-X"}


@dataclass(frozen=True)
class Sentence:
    id: str
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    split: str
    image: str | None = None
    where: str = ""  # file:line of its first token, for messages


@dataclass
class TokenDataset:
    """Sentences with BIO tags over ``types``; ``labels`` is the output order of every token model."""

    name: str
    sentences: list[Sentence]
    types: list[str]
    source: str = ""
    fingerprint: str = ""
    notes: list[Problem] = field(default_factory=list)  # repaired tags
    task: str = TASK

    @property
    def labels(self) -> list[str]:
        return bio.labels_for(self.types)

    @property
    def label_sets(self) -> dict[str, list[str]]:
        return {"tags": self.labels}

    default_label_set = "tags"

    def classes(self, label_set: str | None = None) -> list[str]:
        return self.labels

    def split(self, name: str) -> list[Sentence]:
        return [s for s in self.sentences if s.split == name]

    @property
    def has_images(self) -> bool:
        """Whether any sentence carries an image (the others then read the tagger's "no image" embedding)."""
        return any(s.image for s in self.sentences)


@dataclass
class _Raw:
    file: str
    line: int
    tokens: list[str]
    tags: list[str]
    lines: list[int]  # line of each token (CoNLL), or the row's line repeated
    split: str
    id: str = ""
    image: str | None = None


def is_token_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a token dataset: CoNLL split files, or a manifest.jsonl whose rows carry tokens."""
    folder = Path(path)
    if not folder.is_dir():
        return False
    manifest = folder / "manifest.jsonl"
    if manifest.is_file():
        # Only a peek at the first row: a file that does not decode or parse is not recognised here, and the
        # manifest checks then report it with its line.
        try:
            with open(manifest, encoding="utf-8-sig") as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        return isinstance(row, dict) and "tokens" in row
        except (UnicodeDecodeError, ValueError, RecursionError, OSError):
            return False
        return False
    return not (folder / "manifest.csv").exists() and bool(_conll_files(folder))


def _split_of(name: str) -> str | None:
    lower = name.lower()
    return next((split for word, split in SPLIT_WORDS if word in lower), None)


def _conll_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() not in SKIPPED and p.name != "labels.txt" and _split_of(p.name))


def _read_conll(path: Path, split: str, problems: list[Problem]) -> list[_Raw]:
    out: list[_Raw] = []
    current: _Raw | None = None
    for number, line in _lines(path, problems):
            # With tabs, the tabs separate the columns, so a token holding a space is seen (and refused)
            # instead of being cut at the space; without tabs, any run of spaces does.
            cells = [c.strip() for c in line.split("\t")] if "\t" in line and line.strip() else line.split()
            while cells and not cells[-1]:
                cells.pop()
            if cells and cells[0].split() != [cells[0]]:
                what = f"token {cells[0]!r} holds a space" if cells[0] else "the token is empty (the line starts with a tab)"
                problems.append(Problem(path.name, number, "token", f"{what}: put one word per line, each with its tag"))
                continue
            if not cells:
                current = None
                continue
            if cells[0] == "-DOCSTART-":
                current = None
                continue
            if len(cells) < 2:
                problems.append(Problem(path.name, number, "tag", f"token {cells[0]!r} has no tag "
                                        "(1 column; expected token<TAB>tag)"))
                continue
            if current is None:
                current = _Raw(path.name, number, [], [], [], split, id=f"{path.name}:{number}")
                out.append(current)
            current.tokens.append(cells[0])
            current.tags.append(cells[-1])
            current.lines.append(number)
    return out


def _lines(path: Path, problems: list[Problem]) -> list[tuple[int, str]]:
    """(line number, text) of a user's file; one line-numbered problem instead, when it is not UTF-8 text."""
    from mmzoo.textfile import decode

    text, line, why = decode(path.read_bytes())
    if text is None:
        problems.append(Problem(path.name, line, "", why))
        return []
    return numbered_lines(text)


def _read_manifest(path: Path, problems: list[Problem], decode: bool = False) -> list[_Raw]:
    out = []
    seen: dict[str, int] = {}  # id -> first line: predictions and the export's parity check look sentences up by id
    for number, line in _lines(path, problems):
            if not line.strip():
                continue
            row, why = json_row(line)
            if why:
                problems.append(Problem(path.name, number, "", why))
                continue
            if not isinstance(row, dict):
                problems.append(Problem(path.name, number, "", f"expected a JSON object, got {type(row).__name__}"))
                continue
            bad = len(problems)
            tokens, tags = row.get("tokens"), row.get("tags")
            for key, value in (("tokens", tokens), ("tags", tags)):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    problems.append(Problem(path.name, number, key, f"'{key}' must be a list of strings"))
            split = row.get("split", "") or ""
            if split not in ("", "train", "val", "test"):
                problems.append(Problem(path.name, number, "split", f"bad split {json.dumps(split)}: use train, "
                                        "val or test, or leave it out to have one assigned"))
            sample_id = row.get("id")
            if sample_id is None or sample_id == "":
                sample_id = f"line-{number}"
            elif isinstance(sample_id, bool) or not isinstance(sample_id, (str, int)):
                problems.append(Problem(path.name, number, "id", f"'id' must be a string, got {json.dumps(sample_id)}"))
            elif str(sample_id) in seen:
                problems.append(Problem(path.name, number, "id", f"duplicate id '{sample_id}' (first used on line "
                                        f"{seen[str(sample_id)]}); give every sentence its own id"))
            else:
                seen[str(sample_id)] = number
            image = row.get("image")
            if image is not None and not isinstance(image, str):
                problems.append(Problem(path.name, number, "image", f"'image' must be a path (a string), got "
                                        f"{json.dumps(image)}"))
            elif image is not None:  # the classification manifests' checks: inside the folder, a readable picture
                check_image(path.parent.resolve(), image, path.name, number, problems, decode=decode)
            if len(problems) > bad:
                continue
            if len(tokens) != len(tags):
                problems.append(Problem(path.name, number, "tags", f"{len(tokens)} tokens but {len(tags)} tags"))
                continue
            if not tokens:
                problems.append(Problem(path.name, number, "tokens", "empty sentence (no tokens)"))
                continue
            empty = [i for i, t in enumerate(tokens) if not t.strip() or t.split() != [t]]
            if empty:
                problems.append(Problem(path.name, number, "tokens", f"token {empty[0]} is empty or holds "
                                        f"whitespace ({json.dumps(tokens[empty[0]])})"))
                continue
            out.append(_Raw(path.name, number, tokens, tags, [number] * len(tokens), split,
                            id=str(sample_id), image=image))
    return out


def _declared_types(folder: Path, problems: list[Problem]) -> list[str] | None:
    path = folder / "labels.txt"
    if not path.is_file():
        return None
    types: list[str] = []
    before = len(problems)
    lines = _lines(path, problems)
    if len(problems) > before:  # not UTF-8: reported at its line; checking every tag against nothing would bury it
        return None
    for number, line in lines:
        label = line.strip()
        if not label or label == bio.OUTSIDE:
            continue
        parsed = bio.parse(label)
        typ = parsed[1] if parsed else label
        if " " in typ:
            problems.append(Problem("labels.txt", number, "label", f"entity type {typ!r} holds a space"))
        elif typ not in types:
            types.append(typ)
    return types


def scan(path: str | Path, decode: bool = False) -> tuple[list[_Raw], list[str], list[Problem], list[Problem]]:
    """(sentences, types, problems, notes): every problem in file order; notes are repaired orphan I- tags."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} does not exist or is not a folder")
    problems: list[Problem] = []
    notes: list[Problem] = []
    declared = _declared_types(folder, problems)
    if (folder / "manifest.jsonl").is_file():
        raws = _read_manifest(folder / "manifest.jsonl", problems, decode)
    else:
        files = _conll_files(folder)
        if not files:
            raise DataError(f"no CoNLL files or manifest.jsonl in {folder}",
                            hint="name CoNLL files after their split (train, dev, test) or add a manifest.jsonl "
                                 "with tokens and tags per row")
        raws = [r for f in files for r in _read_conll(f, _split_of(f.name), problems)]
    types: list[str] = list(declared or [])
    scheme = bio.scheme_of(t for raw in raws for t in raw.tags)
    if scheme:
        extra = OTHER_PREFIXES[scheme]
        notes.append(Problem(folder.name, 0, "scheme", f"the tags use the {scheme} scheme ({extra} seen); they are "
                             f"read as BIO with the same entities: {READ_AS[scheme]}"))
        for raw in raws:
            raw.tags = bio.to_bio(raw.tags, scheme)
    good = []
    for raw in raws:
        bad = False
        for tag, line in zip(raw.tags, raw.lines, strict=True):
            parsed = bio.parse(tag)
            if parsed is None:
                problems.append(Problem(raw.file, line, "tag", f"tag {tag!r} is outside the BIO scheme "
                                        "(use O, B-TYPE or I-TYPE; a dataset tagged in BIOES (S-, E-) or BILOU "
                                        "(U-, L-) is read too, one scheme per dataset)"))
                bad = True
            elif parsed[1] and declared is not None and parsed[1] not in declared:
                problems.append(Problem(raw.file, line, "tag", f"tag {tag!r}: type {parsed[1]!r} is not in "
                                        f"labels.txt ({', '.join(declared) or 'empty'})"))
                bad = True
            elif parsed[1] and parsed[1] not in types:
                twin = next((t for t in types if label_key(t) == label_key(parsed[1])), None)
                if twin is not None:  # looks like a known type but would be another one
                    problems.append(Problem(raw.file, line, "tag", f"tag {tag!r}: entity type {ascii(parsed[1])} "
                                            f"differs from {ascii(twin)} only in Unicode normalisation; write every "
                                            "tag of a type the same way"))
                    bad = True
                else:
                    types.append(parsed[1])
        if bad:
            continue
        for i in bio.orphans(raw.tags):
            notes.append(Problem(raw.file, raw.lines[i], "tag", f"{raw.tags[i]} continues no "
                                 f"{raw.tags[i][2:]} entity; repaired to B-{raw.tags[i][2:]}"))
        raw.tags = bio.repair(raw.tags)
        good.append(raw)
    entities = sum(len(bio.spans(raw.tags)) for raw in good)
    repaired = sum(note.field == "tag" for note in notes)
    if entities and repaired > entities / 2:  # most entities started with an orphan I-
        notes.insert(0, Problem(folder.name, 0, "scheme", f"{repaired} of {entities} entities start "
                                "with I-: the tags look like IOB1 (an entity starts with I- unless it follows "
                                "one of its type); they are read as BIO with the same entities, each starting "
                                "I-X as B-X"))
    if not problems and not good:
        problems.append(Problem(folder.name, 0, "", "the dataset has no sentences"))
    elif not problems:  # training needs both (test may be absent); reported here so `data check` says it too
        present = {raw.split or _assign(raw) for raw in good}
        missing = [s for s in ("train", "val") if s not in present]
        if missing:
            problems.append(Problem(folder.name, 0, "split", f"no {' or '.join(missing)} sentences; name a CoNLL "
                                    "file after each split (train, dev, test), or set `split` in the manifest"))
    problems.sort(key=lambda p: (p.file, p.line))  # file order, whichever pass found them
    return good, (types if declared is not None else sorted(types)), problems, notes


def entity_counts(raws: list[_Raw]) -> dict[str, dict[str, int]]:
    """Entities per type and split (train, val, test) of checked sentences, for `data check`'s table."""
    counts: dict[str, dict[str, int]] = {}
    for raw in raws:
        split = raw.split or _assign(raw)
        for typ, _, _ in bio.spans(raw.tags):
            counts.setdefault(typ, dict.fromkeys(("train", "val", "test"), 0))[split] += 1
    return dict(sorted(counts.items()))


def _assign(raw: _Raw) -> str:
    """70/15/15 by a hash of the sentence id, so the split survives reordering."""
    h = int(hashlib.sha256(raw.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if h < 0.70 else "val" if h < 0.85 else "test"


def load_token_folder(path: str | Path, name: str | None = None) -> TokenDataset:
    """Load a checked token dataset; raises DataError pointing at ``mmzoo data check``."""
    folder = resolve_folder(path)
    raws, types, problems, notes = scan(folder)
    if problems:
        raise DataError(f"token dataset {folder} has {len(problems)} problem{'s' * (len(problems) != 1)} "
                        f"(first: {problems[0]})", hint=f"run `mmzoo data check {path}` to see the full report")
    digest = hashlib.sha256(("tokens\0" + "\0".join(types) + "\n").encode())
    sentences = []
    for raw in raws:
        split = raw.split or _assign(raw)
        image = str(folder / raw.image) if raw.image else None
        # the picture's bytes, not only its name, are part of the data: a changed image is other data
        picture = hashlib.sha256(Path(image).read_bytes()).hexdigest() if image else None
        fields = [raw.id, raw.tokens, raw.tags, split, raw.image] + ([picture] if picture else [])
        digest.update(json.dumps(fields).encode() + b"\n")
        sentences.append(Sentence(raw.id, tuple(raw.tokens), tuple(raw.tags), split, image, f"{raw.file}:{raw.line}"))
    return TokenDataset(name or folder.name, sentences, types, str(folder), digest.hexdigest()[:16], notes)


def load_wnut17() -> TokenDataset:
    """The bundled WNUT-17 corpus (CC-BY 4.0): train 3,394, val (dev) 1,009, test 1,287 sentences."""
    return load_token_folder(WNUT17, name="wnut17")


expect("dataset:tokens", TokenDataset)  # what a registered token dataset must build (checked by Part.create)
