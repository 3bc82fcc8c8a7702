"""Pilot tests for distillation from the TUI: an ensemble run's `k` opens the dialog, Start trains on the Train screen."""

from __future__ import annotations

from mmzoo.ensemble.build import build_ensemble, combiner_spec
from mmzoo.runs.folders import list_runs
from mmzoo.tui.app import make_app
from tui.tuikit import SMALL, record_notifications, screen_text, type_into, wait_for


def _ensemble(root):
    members = [r for r in list_runs(root) if r.model in ("tiny_text", "tiny_concat")]
    spec = {"name": "tiny_pair", "kind": "ensemble", "recipe": {"members": ["tiny_text", "tiny_concat"]},
            "combiner": combiner_spec("mean")}
    return build_ensemble(spec, members, root=root)


async def test_an_ensemble_run_is_distilled_from_the_runs_screen(runs_copy, tiny_registry_file):
    """k on a finished ensemble opens the dialog at 80x24; Start distils into the chosen student with progress."""
    ensemble = _ensemble(runs_copy)
    app = make_app(registry_file=str(tiny_registry_file), runs_dir=runs_copy)
    shown = record_notifications(app)
    statuses: list[str] = []
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("t")
        train = app.screen
        status = train.query_one("#train-status")
        original = status.update
        status.update = lambda content="": (statuses.append(str(content)), original(content))[1]
        await pilot.press("r")
        plain = next(r for r in list_runs(runs_copy) if r.model == "tiny_text")
        app.screen.focus_run(plain.path)
        await pilot.press("k")  # a model run is no teacher
        await pilot.pause()
        assert shown[-1]["message"] == "pick a finished ensemble run to distil"
        app.screen.focus_run(ensemble.path)
        await pilot.press("enter")  # the ensemble's detail view offers it
        await pilot.pause()
        assert "(k: distil it into one model)" in screen_text(app)
        await pilot.press("k")
        await pilot.pause()
        text = screen_text(app)
        assert f"Distil {ensemble.name} into one model" in text and "train split only" in text
        for label in ("student", "temperature", "alpha", "augment", "start from", "Start"):
            assert label in text
        best = next(r for r in list_runs(runs_copy) if r.name == ensemble.metrics["best_member"])
        assert app.screen.query_one("#distill-student").value == best.model  # the best member's model first
        assert f"student      {best.model}" in text
        app.screen.query_one("#distill-student").value = "tiny_concat"
        await type_into(pilot, "#distill-alpha", "2")
        await pilot.click("#distill-start")
        await pilot.pause()
        assert "alpha must be a number from 0 to 1, got '2'" in screen_text(app)
        await type_into(pilot, "#distill-alpha", "0.7")
        app.screen.query_one("#distill-augment").value = "shift+swap"
        assert app.screen.query_one("#distill-start-from").value == "auto"
        app.screen.query_one("#distill-start-from").value = "member"  # tiny_concat is a member: start from its weights
        await pilot.click("#distill-start")
        await wait_for(pilot, lambda: shown and shown[-1]["title"] == "distillation finished", 240,
                       "the distillation")
        assert app.screen is train
        text = screen_text(app)
        assert "model tiny_concat" in text and "tiny_concat_distilled/" in text and "finished" in text
        assert any(s.startswith("student of tiny_pair · epoch 1 · step") for s in statuses), statuses
        (student,) = [r for r in list_runs(runs_copy) if r.spec.get("teacher")]
        await pilot.press("r")
        app.screen.focus_run(student.path)
        await pilot.press("enter")  # a distilled run's detail names its teacher and settings
        await pilot.pause()
        member = next(r for r in list_runs(runs_copy) if r.model == "tiny_concat" and not r.spec.get("teacher"))
        text = screen_text(app)
        assert f"teacher {ensemble.name} · T 1.0 · alpha 0.7 · augment shift+swap" in text
        assert f"started from {member.name}" in text
        assert "teacher gap closed" in screen_text(app)
    assert student.model == "tiny_concat_distilled" and student.finished
    assert student.spec["teacher"] | {"path": None, "warm_start": None} == {
        "run": ensemble.name, "path": None, "temperature": 1.0, "alpha": 0.7, "augment": "shift+swap",
        "soft_labels": "train", "warm_start": None}
    assert student.spec["teacher"]["warm_start"]["run"] == member.name


async def test_a_distillation_cancels_and_resumes_with_its_teacher(runs_copy, tiny_registry_file):
    """Cancel stops the student after a step; u on the Runs screen resumes it with the teacher it recorded."""
    ensemble = _ensemble(runs_copy)
    app = make_app(registry_file=str(tiny_registry_file), runs_dir=runs_copy)
    shown = record_notifications(app)
    async with app.run_test(size=SMALL) as pilot:
        train = app.get_screen("train")
        await pilot.press("r")
        app.screen.focus_run(ensemble.path)
        await pilot.press("k")
        await pilot.pause()
        app.screen.query_one("#distill-augment").value = "mixup"
        await pilot.click("#distill-start")
        await wait_for(pilot, lambda: train.run_path is not None, 120, "the student to start")
        await pilot.press("c")
        await wait_for(pilot, lambda: shown and shown[-1]["title"] == "training cancelled", 120, "the cancel")
        assert "cancelled" in screen_text(app)
        (student,) = [r for r in list_runs(runs_copy) if r.spec.get("teacher")]
        assert student.status["state"] == "cancelled"
        await pilot.press("r")
        app.screen.reload()
        app.screen.focus_run(student.path)
        await pilot.press("u")
        await wait_for(pilot, lambda: shown and shown[-1]["title"] == "training finished", 240, "the resumed run")
    (student,) = [r for r in list_runs(runs_copy) if r.spec.get("teacher")]
    assert student.finished and student.spec["teacher"]["augment"] == "mixup"
