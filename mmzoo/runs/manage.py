"""Provides run management: tags kept in a run's tags.json, matching runs against a filter, deleting a run.

Tags are the user's notes about a run ("baseline", "keep"); they live in ``<run>/tags.json`` (a JSON list),
written atomically, so nothing else in the run folder changes when a run is tagged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mmzoo import atomic
from mmzoo.errors import RunError

TAGS_FILE = "tags.json"


def read_tags(run_path: Path) -> list[str]:
    """The run's tags, sorted; a run never tagged has none."""
    file = Path(run_path) / TAGS_FILE
    if not file.exists():
        return []
    try:
        tags = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{file} is unreadable ({exc})", hint="delete the file to clear the run's tags") from None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RunError(f"{file} must hold a JSON list of strings", hint="delete the file to clear the run's tags")
    return sorted(tags)


def parse_tags(text: str) -> list[str]:
    """Tags from what a user typed: separated by commas or spaces, each a non-empty word."""
    tags = sorted({t.strip() for t in text.replace(",", " ").split() if t.strip()})
    for tag in tags:
        if len(tag) > 40 or not all(c.isalnum() or c in "-_." for c in tag):
            raise RunError(f"tag {tag!r} is not a short word", hint="use letters, digits, '-', '_' or '.' "
                           "(at most 40 characters), separated by spaces or commas")
    return tags


def set_tags(run_path: Path, tags: list[str]) -> list[str]:
    """Replace the run's tags (an empty list removes tags.json); returns them sorted."""
    run_path = Path(run_path)
    if not (run_path / "spec.yaml").exists():
        raise RunError(f"{run_path} is not a run folder (no spec.yaml)")
    tags = sorted(set(tags))
    file = run_path / TAGS_FILE
    if tags:
        atomic.write_json(file, tags)
    elif file.exists():
        file.unlink()
    return tags


def matches(query: str, *fields: str, tags: list[str] = ()) -> bool:
    """Whether every word of ``query`` occurs in one of the fields or tags (case-insensitive); ``#x`` is a tag."""
    hay = [f.lower() for f in fields]
    tagset = {t.lower() for t in tags}
    for word in query.lower().split():
        if word.startswith("#"):
            if word[1:] not in tagset:
                return False
        elif not any(word in f for f in hay) and not any(word in t for t in tagset):
            return False
    return True


def delete_run(run_path: Path, root: Path) -> None:
    """Remove a run folder that lies under ``root``; its model folder goes too once it holds no runs."""
    run_path, root = Path(run_path).resolve(), Path(root).resolve()
    if not (run_path / "spec.yaml").exists():
        raise RunError(f"{run_path} is not a run folder (no spec.yaml); nothing was deleted")
    if run_path.parent.parent != root:
        raise RunError(f"{run_path} is not a run under {root}; nothing was deleted")
    from mmzoo.runs.folders import Run

    try:
        state = Run(run_path).status.get("state")  # a dead owner's run reads interrupted where folders can tell
    except (RunError, OSError, ValueError):
        state = None  # a damaged status is no reason to keep a run its user wants gone
    if state == "running":
        raise RunError(f"{run_path.parent.name}/{run_path.name} is marked running",
                       hint="cancel it first (or, if its process died, resume or retrain it before deleting)")
    try:
        shutil.rmtree(run_path)
        if not any(run_path.parent.iterdir()):
            run_path.parent.rmdir()
    except OSError as exc:
        raise RunError(f"cannot delete {run_path}: {exc.strerror or exc}") from None
