"""Provides the reproducible build of mmzoo's bundled emoji dataset from emoji-datasource-twitter.

Usage::

    python scripts/build_emoji.py [PATH_TO_UNPACKED_PACKAGE] [--out mmzoo/datasets/emoji]

Without a path it runs ``npm pack emoji-datasource-twitter@16.0.0`` in a temporary
folder and builds from that. The output (atlas PNG, emoji.jsonl, ATTRIBUTION.md) is
byte-for-byte the same on every run for the same package version.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGE = "emoji-datasource-twitter"
VERSION = "16.0.0"
TILE = 64
COLUMNS = 64  # atlas width in tiles: 4096 px, well under PNG/Pillow limits
SEED = 20240601
FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
SKIPPED_CATEGORIES = {"Component"}  # bare skin-tone swatches, not emoji people would classify

# CLDR names of the Fitzpatrick modifiers; emoji.json only has the Unicode ones.
SKIN_TONES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}

# Gender and person variants of one emoji are near-twins (MAN RUNNING, WOMAN RUNNING, RUNNER):
# they share a group, so no split holds one while another split holds its twin.
# Codepoints that only pick a gender, a direction or a presentation are dropped from the key ...
NEUTRAL_CODEPOINTS = {"200D", "FE0F", "2640", "2642", *SKIN_TONES}
DIRECTION = "27A1"  # "facing right" variants (a ZWJ sequence ending in the arrow)
# ... and gendered base characters map to one person of the same age.
PERSON_CODEPOINTS = {
    "1F468": "P", "1F469": "P", "1F9D1": "P",  # man, woman, person (adult)
    "1F466": "C", "1F467": "C", "1F9D2": "C",  # boy, girl, child
    "1F474": "O", "1F475": "O", "1F9D3": "O",  # older man, older woman, older adult
}
# Gendered pairs that are separate characters rather than ZWJ sequences.
ALIASES = {
    "1F478": "1F934", "1FAC5": "1F934",  # princess, person with crown -> prince
    "1F483": "1F57A",  # woman dancing -> man dancing
    "1F930": "1FAC4", "1FAC3": "1FAC4",  # pregnant woman, pregnant man -> pregnant person
    "1F936": "1F385", "P-1F384": "1F385",  # mother christmas, mx claus -> father christmas (santa)
    "1F48F": "P-2764-1F48B-P",  # kiss -> kiss: man, woman (and the other pairs)
    "1F491": "P-2764-P",  # couple with heart -> couple with heart: man, woman
    "1F46B": "1F46C", "1F46D": "1F46C", "P-1F91D-P": "1F46C",  # holding hands: every pairing
}
# Words that only say who: removed from names to find variants the codepoints miss (families).
PERSON_WORDS = {"man", "woman", "men", "women", "person", "people", "boy", "girl", "child", "adult", "and", "two"}

ATTRIBUTION = """\
# emoji dataset: sources and licences

Built by `scripts/build_emoji.py` from the npm package
`{package}@{version}` (https://www.npmjs.com/package/{package}),
published by the iamcal/emoji-data project (https://github.com/iamcal/emoji-data).

Changes made: the 64x64 PNG images of every emoji (and of each skin-tone variant)
that has a Twitter image were packed into `atlas.png` (a grid of {columns} tiles per row,
in `emoji.jsonl` order); the 'Component' category was left out; names and short
names were lowercased into each row's `text` (with underscores and hyphens in short
names turned into spaces); train/val/test splits were added, keeping every
group of near-twins (skin-tone, gender and person variants of one emoji) in one split.

## Images: Twemoji, CC-BY 4.0

Emoji graphics are Twemoji, Copyright Twitter, Inc and other contributors,
licensed under the Creative Commons Attribution 4.0 International licence
(CC-BY 4.0, https://creativecommons.org/licenses/by/4.0/). The images in this
package come from the maintained Twemoji fork (https://github.com/jdecked/twemoji),
as shipped in {package}@{version}.

## Data: emoji-data, MIT

Emoji names, short names, categories and subcategories come from emoji.json in
{package}@{version}, under this licence:

{mit}
"""


def fetch_package(workdir: Path) -> Path:
    """Download and unpack the npm tarball into ``workdir``; return the package folder."""
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    tarball = next(workdir.glob(f"{PACKAGE}-*.tgz"))
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package"


def entries(package: Path) -> list[dict]:
    """One row per image to include (base emoji and skin-tone variants), in a stable order."""
    meta = json.loads((package / "package.json").read_text())
    if meta.get("version") != VERSION:
        sys.exit(f"expected {PACKAGE}@{VERSION}, found version {meta.get('version')} in {package}")
    emoji = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    emoji.sort(key=lambda e: (e["sort_order"], e["unified"]))
    rows = []
    for e in emoji:
        if e["category"] in SKIPPED_CATEGORIES or not e.get("has_img_twitter"):
            continue
        name = e["name"].lower()
        short = "; ".join(s.replace("_", " ").replace("-", " ") for s in e["short_names"])
        group = e["unified"].lower()  # replaced by the variant group in group_variants()
        common = {"category": e["category"], "subcategory": e["subcategory"], "group": group,
                  "name": name}
        rows.append({"id": Path(e["image"]).stem, "text": f"{name}; {short}", "image": e["image"], **common})
        for tones, variant in sorted((e.get("skin_variations") or {}).items()):
            if not variant.get("has_img_twitter"):
                continue
            names = list(dict.fromkeys(SKIN_TONES[t] for t in tones.split("-")))
            # CLDR style: "waving hand: medium skin tone", "kiss: man, man, light skin tone"
            joiner = ", " if ":" in name else ": "
            text = f"{name}{joiner}{', '.join(names)}; {short}"
            rows.append({"id": Path(variant["image"]).stem, "text": text, "image": variant["image"], **common})
    return rows


def codepoint_key(unified: str) -> str:
    """Codepoints without gender, skin tone, direction or ZWJ, with gendered people made neutral."""
    points = unified.upper().split("-")
    if len(points) > 1:
        points = [p for p in points if p != DIRECTION]
    kept = [PERSON_CODEPOINTS.get(p, p) for p in points if p not in NEUTRAL_CODEPOINTS]
    key = "-".join(kept) or unified.upper()
    return ALIASES.get(key, key)


def name_key(category: str, name: str) -> str:
    """The name with words that only say who (man, woman, person, boy, ...) removed."""
    words = [w for w in re.split(r"[^a-z]+", name.lower()) if w and w not in PERSON_WORDS]
    return f"{category}\0{' '.join(words)}"


def group_variants(rows: list[dict]) -> None:
    """Give every row the group of all its skin-tone, gender and person variants (union of both keys)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for r in rows:
        base = "u:" + r["group"]
        union(base, "c:" + codepoint_key(r["group"]))
        union(base, "n:" + name_key(r["category"], r["name"]))
    # The group's id is its smallest base codepoint sequence, so it reads like an emoji id.
    members: dict[str, list[str]] = {}
    for r in rows:
        members.setdefault(find("u:" + r["group"]), []).append(r["group"])
    label = {root: min(ids) for root, ids in members.items()}
    for r in rows:
        r["group"] = label[find("u:" + r["group"])]


def assign_splits(rows: list[dict]) -> None:
    """Split whole groups, per category, so each split gets ~70/15/15 of every category's samples."""
    rng = random.Random(SEED)
    sizes: dict[str, dict[str, int]] = {}
    home: dict[str, str] = {}  # a group is dealt within the category of its first row
    for r in rows:
        category = home.setdefault(r["group"], r["category"])
        sizes.setdefault(category, {}).setdefault(r["group"], 0)
        sizes[category][r["group"]] += 1
    split_of: dict[str, str] = {}
    for category in sorted(sizes):
        groups = sorted(sizes[category])
        rng.shuffle(groups)
        # Big groups first (variants of one emoji can number dozens) so the small ones can even out the counts.
        groups.sort(key=lambda g: -sizes[category][g])
        total = sum(sizes[category].values())
        filled = dict.fromkeys(FRACTIONS, 0)
        for g in groups:
            split = max(FRACTIONS, key=lambda s: FRACTIONS[s] * total - filled[s])
            split_of[g] = split
            filled[split] += sizes[category][g]
    for r in rows:
        r["split"] = split_of[r["group"]]


def build_atlas(package: Path, rows: list[dict]) -> Image.Image:
    """Pack every row's 64x64 RGBA image into one grid, tile i at (i // COLUMNS, i % COLUMNS)."""
    n_rows = -(-len(rows) // COLUMNS)
    atlas = np.zeros((n_rows * TILE, COLUMNS * TILE, 4), dtype=np.uint8)
    folder = package / "img" / "twitter" / "64"
    for i, r in enumerate(rows):
        with Image.open(folder / r["image"]) as img:
            tile = np.asarray(img.convert("RGBA"))  # (64, 64, 4)
        if tile.shape != (TILE, TILE, 4):
            sys.exit(f"{r['image']}: expected a {TILE}x{TILE} image, got {tile.shape}")
        y, x = divmod(i, COLUMNS)
        atlas[y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE] = tile
        r["tile"] = i
    return Image.fromarray(atlas, "RGBA")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", type=Path, help="unpacked npm package folder (default: npm pack it)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mmzoo/datasets/emoji")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package or fetch_package(Path(tmp))
        rows = entries(package)
        group_variants(rows)
        assign_splits(rows)
        atlas = build_atlas(package, rows)
        mit = (package / "LICENSE").read_text(encoding="utf-8").strip()
    args.out.mkdir(parents=True, exist_ok=True)
    atlas.save(args.out / "atlas.png", optimize=True)
    keys = ("id", "text", "category", "subcategory", "split", "group", "tile")  # not "name": it is in the text
    with open(args.out / "emoji.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in keys}, ensure_ascii=False) + "\n")
    (args.out / "ATTRIBUTION.md").write_text(
        ATTRIBUTION.format(package=PACKAGE, version=VERSION, columns=COLUMNS, mit=mit), encoding="utf-8"
    )
    counts = {s: sum(r["split"] == s for r in rows) for s in FRACTIONS}
    print(f"wrote {len(rows)} emoji to {args.out}: {counts}")


if __name__ == "__main__":
    main()
