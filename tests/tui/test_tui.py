"""The Textual TUI: each screen driven through the pilot, errors shown not raised, SVG snapshots as a second net."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_textual_snapshot import SVGImageExtension

from mmzoo.runs.folders import Run, list_runs
from mmzoo.tui.app import make_app
from mmzoo.zoo.plugins import get_zoo
from tui.tuikit import TINY_BASE, record_notifications, type_into, wait_for

ROOT = Path(__file__).resolve().parents[2]

TINY = TINY_BASE  # the tiny zoo the snapshots were approved with
SIZE = (120, 40)


@pytest.fixture
def tiny_registry(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> Path:
    """A runs folder holding a finished text-only run and a finished fusion run with the same text encoder."""
    from mmzoo.train.factory import resolve_spec
    from mmzoo.train.trainer import Options, train

    registry = tmp_path_factory.mktemp("registry") / "tiny.yaml"
    registry.write_text(TINY)
    root = tmp_path_factory.mktemp("runs")
    for name in ("tiny_text", "tiny_concat"):
        spec = resolve_spec(name, str(registry))
        spec["train"]["epochs"] = 1
        train(spec, Options(out=root, quiet=True))
    return root


# -- zoo ----------------------------------------------------------------------------------------------------------


async def test_zoo_navigation_shows_a_parts_params_and_a_models_build(tmp_path):
    """Filtering, arrow keys and enter lead to a part's params and a built model's parameter count."""
    app = make_app(runs_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        details = app.screen.query_one("#zoo-details")
        assert "no problems found" in details.text
        await pilot.press("slash", *"small_", "enter")
        tree = app.screen.query_one("#zoo-tree")
        assert tree.cursor_node.data == ("part", "encoder", "small_cnn")
        text = details.text
        assert "small_cnn" in text and "encoder · image" in text and "plugin  builtin" in text
        assert "channels list = [16, 32, 64]" in text and "width of each conv block" in text
        await pilot.press("down")
        assert tree.cursor_node.data == ("part", "encoder", "small_text")
        assert "kernel_size int = 5" in details.text

        await pilot.press("slash", "ctrl+a", "ctrl+k", *"digits_concat", "enter", "enter")
        await wait_for(pilot, lambda: "digits_concat" in app.screen.built, 90, "the model build")
        await pilot.pause()
        from mmzoo.train.factory import create_model

        model = create_model("digits_concat")
        expected = sum(p.numel() for p in model.parameters())
        assert f"parameters {expected:,}" in details.text
        assert "weights    available offline" in details.text and "encoder: small_cnn" in details.text


async def test_failing_plugin_and_invalid_registry_show_in_the_ui(make_dist, tmp_path, monkeypatch):
    """A plugin that raises on import and a registry entry naming a missing fusion are listed with their errors."""
    make_dist(tmp_path / "site", "broken-plugin", "broken", "broken_tui_mod", "raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  bad_model:\n    text: small_text\n    image: small_cnn\n    fusion: nosuch\n"
                   "    task: {dataset: digits-match}\n")
    get_zoo(refresh=True)
    try:
        app = make_app(registry_file=str(bad), runs_dir=tmp_path / "runs")
        shown = record_notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert any("boom at import" in n["message"] and n["severity"] == "error" for n in shown)
            assert any("bad_model" in n["message"] for n in shown)
            details = app.screen.query_one("#zoo-details")
            await pilot.press("slash", *"broken", "enter")
            assert app.screen.query_one("#zoo-tree").cursor_node.data == ("plugin", "broken")
            assert "failed" in details.text and "RuntimeError: boom at import" in details.text
            await pilot.press("slash", "ctrl+a", "ctrl+k", *"bad_model", "enter")
            assert "invalid: 1 problem(s)" in details.text
            assert "fusion 'nosuch' is not registered" in details.text and "bad.yaml:5" in details.text
            await pilot.press("t")  # an invalid model is not offered for training, and nothing crashed
            assert "bad_model" not in app.screen.query_one("#train-form").entries

        malformed = tmp_path / "malformed.yaml"
        malformed.write_text("models:\n  x: [unclosed\n")
        for registry, expected in ((malformed, "malformed YAML"), (tmp_path / "missing.yaml", "not found")):
            app = make_app(registry_file=str(registry), runs_dir=tmp_path / "runs")
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                tree = app.screen.query_one("#zoo-tree")
                labels = [str(node.label) for node in tree.root.children]
                assert any(label.startswith("registry problems (1)") for label in labels)
                await pilot.press("slash", *"registry problems", "enter")
                assert expected in app.screen.query_one("#zoo-details").text
    finally:
        monkeypatch.undo()
        sys.modules.pop("broken_tui_mod", None)
        get_zoo(refresh=True)


# -- train --------------------------------------------------------------------------------------------------------


async def test_train_digits_concat_from_the_palette_then_see_it_in_runs(tmp_path):
    """The command palette opens Train on digits_concat; 2 epochs run in a worker and the run lands in Runs."""
    app = make_app(runs_dir=tmp_path)
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Train model digits_concat")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "train", 10, "the train screen")
        screen = app.screen
        assert screen.form.model == "digits_concat"
        await type_into(pilot, "#train-epochs", "2")
        await pilot.pause(0.3)
        await pilot.click("#train-start")
        await wait_for(pilot, lambda: screen.running, 5, "training to start")
        await pilot.press("z")  # the other screens keep working while the worker trains
        assert app.current_mode == "zoo"
        await pilot.press("t")
        await wait_for(pilot, lambda: not screen.running, 240, "training to finish")
        finished = [n for n in shown if n["title"] == "training finished"]
        assert finished, shown
        (run,) = list_runs(tmp_path)
        assert run.finished and run.metrics["epochs"] == 2 and run.spec["model"]["train"]["epochs"] == 2
        assert finished[0]["message"].startswith(f"{run.name}: test accuracy {run.metrics['test']['accuracy']:.4f}")
        assert screen.query_one("#train-progress").percentage == 1.0
        assert [h["epoch"] for h in screen.history] == [1, 2]
        xs = screen.losses[0]  # one point per step, at its fractional epoch
        assert xs[-1] == 2.0 and all(a < b for a, b in zip(xs[:-1], xs[1:], strict=True))
        assert "epoch   2" in "\n".join(screen.query_one("#train-log").lines)

        await pilot.press("r")
        table = app.screen.query_one("#runs-table")
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[1] == run.name and row[4] == "finished" and str(row[2]) == f"{run.metrics['test']['accuracy']:.4f}"


async def test_invalid_form_values_are_shown_and_nothing_starts(tmp_path):
    """epochs 0 and lr -1 are refused with a message per field; no run folder appears."""
    app = make_app(runs_dir=tmp_path)
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        await type_into(pilot, "#train-epochs", "0")
        await type_into(pilot, "#train-lr", "-1")
        await pilot.pause(0.3)
        await pilot.click("#train-start")
        await pilot.pause()
        message = str(app.screen.query_one("#train-message").visual)
        assert "epochs must be a whole number (1 to 100000)" in message and "lr must be a number (> 0)" in message
        assert not app.screen.running and shown[-1]["severity"] == "error"
        assert not list(tmp_path.iterdir())


async def test_a_training_failure_is_the_clis_message_as_a_notification(run_cli, tmp_path):
    """A model whose label set does not exist fails in the worker; the app says what the CLI says and lives on."""
    registry = tmp_path / "broken.yaml"
    registry.write_text("models:\n  broken_labels:\n    text: {encoder: small_text, dim: 16, layers: 1}\n"
                        "    task: {dataset: digits-match, label_set: nope}\n")
    app = make_app(registry_file=str(registry), runs_dir=tmp_path / "runs")
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        app.screen.pick("broken_labels")
        await pilot.pause()
        await pilot.click("#train-start")
        await wait_for(pilot, lambda: shown and shown[-1]["severity"] == "error", 60, "the failure")
        assert not app.screen.running and app.is_running
    cli = run_cli("--registry", str(registry), "train", "broken_labels", "--out", str(tmp_path / "cli"))
    assert cli.returncode == 1
    assert f"mmzoo: {shown[-1]['title']}: {shown[-1]['message']}" in cli.stderr
    assert "no label set 'nope'" in shown[-1]["message"]


async def test_cancel_keeps_the_checkpoint_and_runs_resumes_it(tmp_path, tiny_registry):
    """Cancel during epoch 2 keeps epoch 1's checkpoint; Resume on the Runs screen finishes epoch 2 only."""
    app = make_app(registry_file=str(tiny_registry), runs_dir=tmp_path)
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        screen = app.screen
        screen.pick("tiny_concat")
        await pilot.pause()
        # Enough epochs that the run cannot finish between the epoch-1 event and the Cancel click.
        await type_into(pilot, "#train-epochs", "30")
        await pilot.click("#train-start")
        await wait_for(pilot, lambda: len(screen.history) == 1, 120, "epoch 1")
        await pilot.click("#train-cancel")
        await wait_for(pilot, lambda: not screen.running, 60, "the cancel")
        (run,) = list_runs(tmp_path)
        assert run.status["state"] == "cancelled" and not run.finished, (run.spec["model"]["train"]["epochs"], run.history())
        cancelled = shown[-1]
        kept = run.history()[-1]["epoch"]  # the click lands after epoch 1, how much later depends on the load
        assert cancelled["severity"] == "warning" and f"keeps the checkpoint of epoch {kept}" in cancelled["message"]
        # Reported as a cancel, with how to resume here rather than on the command line.
        assert cancelled["title"] == "training cancelled" and "Runs (r)" in cancelled["message"]
        assert "mmzoo train" not in cancelled["message"]
        assert (run.path / "checkpoints" / "LATEST").exists()

        await pilot.press("r")
        assert app.screen.query_one("#runs-table").get_row_at(0)[4] == "cancelled"
        await pilot.press("u")
        await wait_for(pilot, lambda: app.current_mode == "train" and screen.running, 10, "the resume to start")
        await wait_for(pilot, lambda: screen.run_path == run.path, 30, "the resumed run's start event")
        # The loss curve starts from epoch 1 (the run's history), not from the resume point.
        assert screen.losses[0][:kept] == [float(e) for e in range(1, kept + 1)]
        await wait_for(pilot, lambda: not screen.running, 120, "the resumed run to finish")
        assert shown[-1]["title"] == "training finished", shown[-1]
        run = Run(run.path)
        assert run.finished and [h["epoch"] for h in run.history()] == list(range(1, 31))
        assert list_runs(tmp_path) == [run]  # resumed in place, not a new run


# -- runs / compare -----------------------------------------------------------------------------------------------


async def test_compare_two_runs_shows_gains_per_class_f1_confusion_and_curves(finished_runs):
    """Marking a fusion run and its text-only baseline fills every compare tab from their metrics."""
    concat, text = (next(r for r in list_runs(finished_runs) if r.model == m) for m in ("tiny_concat", "tiny_text"))
    app = make_app(runs_dir=finished_runs)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        screen = app.screen
        table = screen.query_one("#runs-table")
        assert [table.get_row_at(i)[1] for i in range(2)] == [concat.name, text.name]  # sorted by name
        header_x = sum(column.get_render_width(table) for column in table.ordered_columns[:2]) + 2
        await pilot.click("#runs-table", offset=(header_x, 0))  # the "test acc" header sorts by accuracy
        await pilot.pause()
        accuracies = [float(str(table.get_row_at(i)[2])) for i in range(2)]
        assert accuracies == sorted(accuracies) and str(table.columns["acc"].label) == "test acc ▲"
        for run in (concat, text):
            screen.focus_run(run.path)
            await pilot.press("space")
        await pilot.press("c")
        await pilot.pause()
        compare = screen.query_one("#compare-table")
        rows = {compare.get_row_at(i)[1].replace("\n", "/"): compare.get_row_at(i) for i in range(2)}
        gain = 100 * (concat.metrics["test"]["accuracy"] - text.metrics["test"]["accuracy"])
        assert str(rows[concat.name][8]) == f"{gain:+.1f}" and str(rows[text.name][8]) == ""
        assert rows[concat.name][2] == "fusion:concat" and rows[text.name][2] == "text-only"

        per_class = screen.query_one("#perclass-table")
        order = [compare.get_row_at(i)[1].replace("\n", "/") for i in range(2)]
        runs = {concat.name: concat, text.name: text}
        for i, name in enumerate(("no_match", "match")):
            row = per_class.get_row_at(i)
            assert row[0] == name
            for k, run_name in enumerate(order, 1):
                assert str(row[k]) == f"{runs[run_name].metrics['test']['per_class'][name]['f1']:.3f}"

        screen.query_one("#compare-tabs").active = "tab-confusion"
        await pilot.pause()
        heatmaps = list(screen.query(".heatmap"))
        assert len(heatmaps) == 2
        matrix = runs[order[0]].metrics["test"]["confusion_matrix"]
        rendered = str(heatmaps[0].visual)
        assert all(str(v) in rendered for row in matrix for v in row)

        screen.query_one("#compare-tabs").active = "tab-curves"
        await pilot.pause()
        series = screen.query_one("#curves-acc").series
        assert [s[0] for s in series] == [f"#{k} {runs[n].model}" for k, n in enumerate(order, 1)]
        assert series[0][2] == [h["val_accuracy"] for h in runs[order[0]].history()]


# -- export / predict ---------------------------------------------------------------------------------------------


async def test_export_shows_parity_then_predicts_a_sample_with_its_image(finished_runs, tmp_path):
    """Runs -> x opens Export on the run; export passes parity; a test sample is drawn and scored by the export."""
    concat = next(r for r in list_runs(finished_runs) if r.model == "tiny_concat")
    app = make_app(runs_dir=finished_runs)
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        app.screen.focus_run(concat.path)
        await pilot.press("x")
        await wait_for(pilot, lambda: app.current_mode == "export", 5, "the export screen")
        screen = app.screen
        assert screen.query_one("#export-run").value == str(concat.path)
        await pilot.click("#export-go")
        await pilot.pause()
        await wait_for(pilot, lambda: not screen.busy, 180, "the export")
        result = str(screen.query_one("#export-result").visual)
        assert "✓ parity passed" in result and "fp32: agreement 100.0%" in result, shown
        exported = concat.path / "onnx" / "tiny_concat.onnx"
        assert exported.exists() and exported.name in result
        assert screen.query_one("#predict-file").value == str(exported.resolve())  # predicts with what it exported

        await pilot.click("#predict-sample-go")
        await pilot.pause()
        await wait_for(pilot, lambda: not screen.busy, 60, "the prediction")
        top = str(screen.query_one("#predict-topk").visual)
        assert "test sample 0" in top and "no_match" in top and "match" in top
        picture = screen.query_one("#predict-picture")
        assert picture.image is not None and "▀" in str(picture.visual)
        from mmzoo.onnx.runtime import Predictor

        predictor = Predictor(exported, device="cpu")
        assert all(f"{p:6.3f}" in top for _, p in predictor.top_k(
            predictor.predict(*_first_test_sample(concat)), 2)[0])

        broken = tmp_path / "broken"
        shutil.copytree(concat.path, broken / "tiny_concat" / "broken")
        (broken / "tiny_concat" / "broken" / "model.safetensors").unlink()
        app.runs_dir = broken
        screen.reload()
        screen.choose(broken / "tiny_concat" / "broken")
        await pilot.click("#export-go")
        await pilot.pause()
        await wait_for(pilot, lambda: not screen.busy, 60, "the failed export")
        assert shown[-1]["severity"] == "error" and app.is_running


async def test_an_ensemble_reuses_finished_members_and_fits_its_combiner(finished_runs, tmp_path):
    """Training tiny_pair with epochs 1 reuses both finished member runs and writes an ensemble run."""
    registry = tmp_path / "tiny.yaml"
    registry.write_text(TINY)
    members = {r.path for r in list_runs(finished_runs)}
    app = make_app(registry_file=str(registry), runs_dir=finished_runs)
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        screen = app.screen
        screen.pick("tiny_pair")
        await type_into(pilot, "#train-epochs", "1")
        await pilot.click("#train-start")
        await wait_for(pilot, lambda: shown and shown[-1]["title"] == "ensemble finished", 120, "the ensemble")
        log = "\n".join(screen.query_one("#train-log").lines)
        assert "tiny_text: reusing finished run" in log and "tiny_concat: reusing finished run" in log
    (ensemble,) = [r for r in list_runs(finished_runs) if r.path not in members]
    assert ensemble.spec["kind"] == "ensemble" and ensemble.finished
    assert {Path(m["path"]) for m in ensemble.spec["members"]} == members
    assert shown[-1]["message"].startswith(f"{ensemble.name}: test accuracy "
                                           f"{ensemble.metrics['test']['accuracy']:.4f}")


async def test_an_ensemble_cancelled_part_way_resumes_its_member_on_the_next_start(tmp_path, tiny_registry):
    """Cancel during the first member's training; starting the ensemble again resumes that member in place."""
    app = make_app(registry_file=str(tiny_registry), runs_dir=tmp_path)
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        screen = app.screen
        screen.pick("tiny_pair")
        await pilot.pause()
        await type_into(pilot, "#train-epochs", "30")
        await pilot.click("#train-start")
        await wait_for(pilot, lambda: len(screen.history) >= 1, 120, "the first member's epoch 1")
        await pilot.click("#train-cancel")
        await wait_for(pilot, lambda: not screen.running, 60, "the cancel")
        assert shown[-1]["severity"] == "warning", shown[-1]
        (member,) = list_runs(tmp_path)  # no second member and no ensemble run yet
        assert member.status["state"] == "cancelled" and member.spec.get("member_of", {}).get("ensemble") == "tiny_pair"
        kept = member.history()[-1]["epoch"]

        await pilot.click("#train-start")
        await wait_for(pilot, lambda: shown and shown[-1]["title"] == "ensemble finished", 300, "the ensemble")
        log = "\n".join(screen.query_one("#train-log").lines)
        assert f"resuming interrupted run {member.name}" in log
    resumed = Run(member.path)
    assert resumed.finished and [h["epoch"] for h in resumed.history()] == list(range(1, 31))
    assert kept < 30
    kinds = sorted(r.spec.get("kind", "model") for r in list_runs(tmp_path))
    assert kinds == ["ensemble", "model", "model"]  # the cancelled member was resumed in place, not retrained


def _first_test_sample(run: Run) -> tuple[list, list]:
    from mmzoo.train.factory import open_dataset

    sample = open_dataset(run.spec["data"]["dataset"]).split("test")[0]
    return [sample.text], [sample.image]


# -- startup and the CLI ------------------------------------------------------------------------------------------


def test_first_paint_imports_no_torch():
    """The first frame appears without torch, transformers, timm or onnxruntime loaded."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tui_first_paint.py"), "--repeats", "1",
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["heavy_modules"] == [] and report["first_paint_s"] > 0


def test_bare_mmzoo_without_a_terminal_prints_help(run_cli):
    """Only an interactive terminal gets the TUI; a pipe gets the usage text."""
    out = run_cli()
    assert out.returncode == 0 and "usage: mmzoo" in out.stdout and " tui " in out.stdout


# -- snapshots ----------------------------------------------------------------------------------------------------


class _SnapshotsHere(SVGImageExtension):
    """Keep this module's SVG baselines in tests/tui/snapshots/ rather than syrupy's default __snapshots__/."""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(Path(test_location.filepath).parent / "snapshots")


@pytest.fixture
def snapshot(snapshot):
    original = snapshot.use_extension
    snapshot.use_extension = lambda extension_class=None: original(_SnapshotsHere)
    return snapshot


@pytest.fixture
def baseline_plugins():
    """Only the plugins the baselines were made with, so installing another plugin doesn't churn them."""
    import os

    from mmzoo.zoo.plugins import get_zoo

    before = os.environ.get("MMZOO_PLUGINS")
    os.environ["MMZOO_PLUGINS"] = "builtin,offline_weights"
    get_zoo(refresh=True)
    yield
    if before is None:
        del os.environ["MMZOO_PLUGINS"]
    else:
        os.environ["MMZOO_PLUGINS"] = before
    get_zoo(refresh=True)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("key", ["z", "t", "r", "e", "a"], ids=["zoo", "train", "runs", "export", "errors"])
def test_screen_snapshot(snap_compare, tmp_path, monkeypatch, key, size, baseline_plugins):
    """Each screen, freshly opened over a fixed registry and no runs, looks as it did when approved."""

    # A fixed catalog in place of the packaged one, so edits to registry.yaml don't churn these.
    (tmp_path / "registry.yaml").write_text(TINY)
    monkeypatch.setattr("mmzoo.zoo.registry.PROJECT_REGISTRY", tmp_path / "registry.yaml")
    monkeypatch.chdir(tmp_path)
    assert snap_compare(make_app(runs_dir=tmp_path / "runs"), press=[key, "_"], terminal_size=size)
