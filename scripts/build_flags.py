"""Provides the reproducible build of mmzoo's bundled flags dataset from the npm package flag-icons.

Usage::

    pip install cairosvg        # SVG rasterisation (needs the system's libcairo)
    python scripts/build_flags.py [PATH_TO_UNPACKED_PACKAGE] [--out mmzoo/datasets/flags]

Without a path it runs ``npm pack flag-icons@7.5.0`` in a temporary folder. Each country or
territory with a continent becomes one row: text = its name and capital, image = its 4:3
flag rasterised to 96x72 PNG, label = its continent. Territories that fly the same flag
(e.g. Bouvet Island and Svalbard use Norway's) share a group, so they never straddle splits.
The output is a manifest folder (docs/data.md) and is the same on every run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "flag-icons"
VERSION = "7.5.0"
WIDTH, HEIGHT = 96, 72
SKIPPED = {None, "Antarctica"}  # no continent, or a single row that no split could learn from

ATTRIBUTION = """\
# flags dataset: sources and licences

Built by `scripts/build_flags.py` from the npm package `{package}@{version}`
(https://www.npmjs.com/package/{package}, https://github.com/lipis/flag-icons).

Changes made: every entry of country.json with a continent other than Antarctica became
one row of manifest.jsonl (text: name and capital; label: continent); its 4:3 SVG flag was
rasterised to a {width}x{height} PNG with CairoSVG; rows whose rasterised flags are identical
share a group; train/val/test splits are assigned by mmzoo (70/15/15 per label, whole groups).

## Flags and data: flag-icons, MIT

{mit}
"""


def fetch_package(workdir: Path) -> Path:
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    tarball = next(workdir.glob(f"{PACKAGE}-*.tgz"))
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package"


def rasterise(svg: bytes) -> bytes:
    """The SVG as a deterministic RGB PNG of WIDTH x HEIGHT."""
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg, output_width=WIDTH, output_height=HEIGHT)
    with Image.open(io.BytesIO(png)) as img:
        rgba = img.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    flat.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", type=Path, help="unpacked npm package folder (default: npm pack it)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mmzoo/datasets/flags")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package or fetch_package(Path(tmp))
        meta = json.loads((package / "package.json").read_text())
        if meta.get("version") != VERSION:
            sys.exit(f"expected {PACKAGE}@{VERSION}, found version {meta.get('version')} in {package}")
        countries = json.loads((package / "country.json").read_text(encoding="utf-8"))
        rows, images = [], {}
        for c in sorted(countries, key=lambda c: c["code"]):
            if c.get("continent") in SKIPPED:
                continue
            svg = (package / c["flag_4x3"]).read_bytes()
            image = f"images/{c['code']}.png"
            images[image] = rasterise(svg)
            text = c["name"] + (f"; capital {c['capital']}" if c.get("capital") else "")
            rows.append({"id": c["code"], "text": text, "image": image, "label": c["continent"],
                         "group": hashlib.sha256(images[image]).hexdigest()[:12]})
        mit = (package / "LICENSE").read_text(encoding="utf-8").strip()
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for name, png in images.items():
        (args.out / name).write_bytes(png)
    with open(args.out / "manifest.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (args.out / "ATTRIBUTION.md").write_text(
        ATTRIBUTION.format(package=PACKAGE, version=VERSION, width=WIDTH, height=HEIGHT, mit=mit), encoding="utf-8")
    print(f"wrote {len(rows)} flags to {args.out}")


if __name__ == "__main__":
    main()
