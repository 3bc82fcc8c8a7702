"""Pilot tests for the TUI's new screens and views (issue 14 part B), at 80x24 and asserting on what is visible."""

from __future__ import annotations

from mmzoo.runs.folders import Run, list_runs
from mmzoo.runs.manage import read_tags
from mmzoo.runs.predictions import load_predictions
from mmzoo.tui.app import make_app
from tui.tuikit import SMALL, record_notifications, screen_text, type_into, wait_for


async def _open_errors(pilot, app, run: Run, split: str = "test"):
    await pilot.press("a")
    screen = app.screen
    screen.query_one("#errors-split").value = split
    screen.choose(run.path)
    await pilot.pause()
    await wait_for(pilot, lambda: screen.predictions is not None and screen.predictions.split == split, 60,
                   "the predictions")
    await pilot.pause()
    return screen


async def test_error_analysis_lists_a_splits_mistakes_with_their_inputs(trained_runs):
    """The test split's mistakes are listed; a sample shows its id, text, image, true label and top-3 at 80x24."""
    run = next(r for r in list_runs(trained_runs) if r.model == "tiny_concat")
    predictions = load_predictions(run.path, "test")
    wrong = predictions.select()
    app = make_app(runs_dir=trained_runs)
    async with app.run_test(size=SMALL) as pilot:
        screen = await _open_errors(pilot, app, run)
        table = screen.query_one("#errors-table")
        assert table.row_count == len(wrong) > 0
        text = screen_text(app)
        assert f"test: {len(wrong)} of {len(predictions)} wrong (accuracy {predictions.accuracy():.4f})" in text
        assert app.focused is table
        first = wrong[0]
        sample = screen.samples[first.id]
        assert f"{first.id}  ✗ true {first.true}" in text and f"predicted {first.predicted}" in text
        assert f"text: {sample.text}" in text and "top 3:" in text
        for label, p in first.top:
            assert f"{label} {p:.3f}" in text
        picture = screen.query_one("#errors-picture")
        assert picture.image is not None and "▀" in str(picture.visual)
        await pilot.press("down")
        assert f"{wrong[1].id}  ✗" in screen_text(app)

        await pilot.press("w")  # every sample, right and wrong
        await pilot.pause()
        assert table.row_count == len(predictions)
        await pilot.press("w")
        await pilot.pause()
        assert table.row_count == len(wrong)


async def test_error_analysis_filters_by_class_and_jumps_from_a_matrix_cell(trained_runs):
    run = next(r for r in list_runs(trained_runs) if r.model == "tiny_text")
    predictions = load_predictions(run.path, "val")
    first, second = predictions.classes
    matrix = predictions.confusion()
    app = make_app(runs_dir=trained_runs)
    async with app.run_test(size=SMALL) as pilot:
        screen = await _open_errors(pilot, app, run, split="val")
        table = screen.query_one("#errors-table")
        screen.query_one("#errors-true").value = second
        await pilot.pause()
        assert table.row_count == matrix[1][0] and all(s.true == second for s in screen.shown)
        screen.query_one("#errors-true").value = "any"
        screen.query_one("#errors-pred").value = second
        await pilot.pause()
        assert table.row_count == matrix[0][1] and all(s.predicted == second for s in screen.shown)
        await pilot.press("f")  # clear the filters
        assert table.row_count == matrix[0][1] + matrix[1][0]

        await pilot.press("m")
        assert screen.query_one("#errors-switcher").current == "errors-matrix"
        text = screen_text(app)
        assert f"0 {first}" in text and f"1 {second}" in text and str(matrix[0][0]) in text
        confusion = screen.query_one("#errors-confusion")
        confusion.move_cursor(row=0, column=2)  # true: first class, predicted: the second
        await pilot.press("enter")
        await pilot.pause()
        assert screen.query_one("#errors-switcher").current == "errors-list"
        status = " ".join(screen_text(app).split())  # the status line may wrap at 80 columns
        assert table.row_count == matrix[0][1] and f"true {first} · predicted {second}" in status
        await pilot.press("m")
        confusion.move_cursor(row=1, column=2)  # a diagonal cell: the samples it got right
        await pilot.press("enter")
        await pilot.pause()
        assert table.row_count == matrix[1][1] and all(s.correct for s in screen.shown)


async def test_runs_filter_tag_detail_and_delete(runs_copy):
    runs = list_runs(runs_copy)
    concat = next(r for r in runs if r.model == "tiny_concat")
    app = make_app(runs_dir=runs_copy)
    shown = record_notifications(app)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("r")
        screen = app.screen
        table = screen.query_one("#runs-table")
        screen.focus_run(concat.path)
        await pilot.press("g", *"keep baseline", "enter")
        await pilot.pause()
        assert read_tags(concat.path) == ["baseline", "keep"] and shown[-1]["message"].endswith("tags baseline, keep")
        await pilot.press("slash", *"#keep", "enter")
        await pilot.pause()
        assert table.row_count == 1 and table.get_row_at(0)[1] == concat.name
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"nothing-matches", "enter")
        assert table.row_count == 0
        await pilot.press("slash", "ctrl+a", "ctrl+k", "enter")
        assert table.row_count == len(runs)

        screen.focus_run(concat.path)
        await pilot.press("enter")
        await pilot.pause()
        text = screen_text(app)
        test, val = concat.metrics["test"], concat.metrics["val"]
        assert concat.name in text and "baseline, keep" in text and "ECE" in text
        assert f"{val['accuracy']:.4f}" in text and f"{test['accuracy']:.4f}" in text
        await pilot.press("escape")

        await pilot.press("d")
        await pilot.pause()
        assert "Delete run" in screen_text(app) and concat.name in screen_text(app)
        await pilot.press("n")  # declined: nothing happens
        await pilot.pause()
        assert concat.path.exists() and table.row_count == len(runs)
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: table.row_count == len(runs) - 1, 5, "the table to drop the run")
        assert not concat.path.exists() and shown[-1]["message"] == f"deleted {concat.name}"


async def test_a_zoo_entry_shows_and_opens_its_past_runs(trained_runs, tiny_registry_file):
    concat = next(r for r in list_runs(trained_runs) if r.model == "tiny_concat")
    app = make_app(registry_file=str(tiny_registry_file), runs_dir=trained_runs)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("slash", *"tiny_concat", "enter")
        details = app.screen.query_one("#zoo-details")
        assert "past runs 1" in details.text and concat.id in details.text
        await pilot.press("p")
        await wait_for(pilot, lambda: app.current_mode == "runs", 5, "the runs screen")
        table = app.screen.query_one("#runs-table")
        assert table.row_count == 1 and table.get_row_at(0)[1] == concat.name


async def test_an_ensemble_shows_live_member_progress_then_its_weights_and_diversity(tmp_path, tiny_registry_file):
    """Training tiny_weighted trains both members with visible progress, then the detail view explains it."""
    app = make_app(registry_file=str(tiny_registry_file), runs_dir=tmp_path)
    shown = record_notifications(app)
    statuses: list[str] = []
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("t")
        screen = app.screen
        status = screen.query_one("#train-status")
        original = status.update
        status.update = lambda content="": (statuses.append(str(content)), original(content))[1]
        screen.pick("tiny_weighted")
        await type_into(pilot, "#train-epochs", "1")
        await pilot.click("#train-start")
        await wait_for(pilot, lambda: shown and shown[-1]["title"] == "ensemble finished", 240, "the ensemble")
        for member in ("tiny_text", "tiny_concat"):
            assert any(s.startswith(f"member {member} of tiny_weighted · epoch 1 · step") for s in statuses), statuses
        assert screen.history and screen.query_one("#metric-plot").series[0][1] == [1]
        (ensemble,) = [r for r in list_runs(tmp_path) if r.spec.get("kind") == "ensemble"]
        await pilot.press("r")
        app.screen.focus_run(ensemble.path)
        await pilot.press("enter")
        await pilot.pause()
        text = screen_text(app)
        assert "combiner weighted" in text and "weight 0." in text
        for member in ensemble.spec["members"]:
            assert member["name"] in text and member["weight_note"] in text
        detail = app.screen.query_one("#run-detail")
        detail.scroll_end(animate=False)
        await pilot.pause()
        text = screen_text(app)
        disagreement = ensemble.metrics["diversity"]["mean_disagreement"]
        assert "diversity on test" in text and f"mean disagreement: {disagreement:.4f}" in text


def test_plot_axes_follow_the_data_on_even_ticks():
    from mmzoo.tui.widgets.curves import ema, epoch_ticks, y_axis

    cases = (([0.81, 0.86, 0.9], 8), ([0.6812, 0.7421, 0.7013], 9), ([0.3, 0.52], 13), ([2.0], 0),
             ([0.6945897936820984, 0.6945897936820986], 7))  # a loss and its EMA after one step differ by rounding
    for values, rows in cases:
        (low, high), ticks, labels = y_axis(values, rows, floor=0.0, ceiling=None)
        assert low <= min(values) and high >= max(values) and low <= ticks[0] and ticks[-1] <= high
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(steps) == 1 and len(ticks) >= 3 and len({len(label) for label in labels}) == 1
        if rows:  # every tick on a whole row of the plotting area, so they are evenly spaced on screen
            positions = [(t - low) / (high - low) * (rows - 1) for t in ticks]
            assert all(abs(p - round(p)) < 1e-6 for p in positions), positions
    _, ticks, _ = y_axis([0.97, 0.99, 1.0], 9, floor=0.0, ceiling=1.0)
    assert ticks[-1] == 1.0 and ticks[0] < 0.97  # no tick label above 1 on an accuracy axis
    (low, high), _, _ = y_axis([0.81, 0.86, 0.9], 8, floor=0.0, ceiling=1.0)
    assert low >= 0.7 and high <= 1.0  # not squashed into a 0-1 axis
    assert epoch_ticks(0.1, 5.9)[1] == ["1", "2", "3", "4", "5"] and epoch_ticks(1, 30)[1][:2] == ["1", "6"]
    smooth = ema([1.0, 0.0, 1.0, 0.0], alpha=0.5)
    assert smooth[0] == 1.0 and all(0 < v < 1 for v in smooth[1:])


async def test_plots_keep_their_legend_off_the_curves(tmp_path):
    app = make_app(runs_dir=tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("t")
        plot = app.screen.query_one("#metric-plot")
        plot.set_series([("val accuracy", [1, 2, 3], [0.81, 0.86, 0.9]), ("val macro-F1", [1, 2, 3], [0.8, 0.84, 0.88])])
        await pilot.pause()
        legend = str(plot.query_one(".curves-legend").visual)
        assert "val accuracy" in legend and "val macro-F1" in legend
        assert 0.6 < plot.ylim[0] <= 0.8 and 0.9 <= plot.ylim[1] <= 1.0  # follows the data, not 0-1
        canvas = plot.query_one("PlotextPlot")
        assert canvas.region.y > plot.query_one(".curves-legend").region.y  # the legend sits above the plot


async def test_every_screen_at_80x24_shows_its_main_controls(trained_runs, tiny_registry_file):
    """What each screen is for is on screen at 80x24 (the SVG snapshots pin the looks; this pins the content)."""
    essentials = {
        "z": ("models", "ensembles", "tiny_concat"),
        "t": ("model", "epochs", "lr", "Start", "Cancel", "train loss", "validation", "idle"),
        "r": ("test acc", "macro-F1", "state", "tiny_concat/", "tiny_text/", "⏎ detail"),
        "e": ("run", "precision", "parity samples", "folder", "Export", "predict with", "Predict sample", "image"),
        "a": ("run", "split", "true", "predicted", "wrong only", "Matrix/list"),
    }
    app = make_app(registry_file=str(tiny_registry_file), runs_dir=trained_runs)
    async with app.run_test(size=SMALL) as pilot:
        for key, words in essentials.items():
            await pilot.press(key)
            await pilot.pause()
            text = screen_text(app)
            missing = [w for w in words if w not in text]
            assert not missing, f"screen {key!r} at 80x24 hides {missing}:\n{text}"


async def test_export_to_a_chosen_folder_with_a_chosen_number_of_parity_samples(runs_copy, tmp_path):
    concat = next(r for r in list_runs(runs_copy) if r.model == "tiny_concat")
    out = tmp_path / "exports"
    app = make_app(runs_dir=runs_copy)
    shown = record_notifications(app)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("e")
        screen = app.screen
        screen.choose(concat.path)
        screen.query_one("#export-samples").value = "0"
        screen.action_export()
        await pilot.pause()
        assert shown[-1]["severity"] == "error" and "parity samples must be a whole number" in shown[-1]["message"]
        screen.query_one("#export-samples").value = "24"
        screen.query_one("#export-folder").value = str(out)
        screen.action_export()
        await pilot.pause()
        await wait_for(pilot, lambda: not screen.busy, 180, "the export")
        exported = out / "tiny_concat.onnx"
        assert exported.exists() and not (concat.path / "onnx").exists()
        assert "fp32: agreement" in screen_text(app) and "n=24" in screen_text(app)
        assert screen.query_one("#predict-file").value == str(exported.resolve())
