"""Pilot tests for the TUI bugs of issue 14 (part B), each reproduced at the size or in the state it was found."""

from __future__ import annotations

import pytest

from mmzoo.runs.folders import list_runs
from mmzoo.tui.app import make_app
from tui.tuikit import SMALL, record_notifications, screen_text, type_into, wait_for


async def test_export_at_80x24_shows_predictions_made_with_the_chosen_file(runs_copy):
    """Bugs 1 and 2: at 80x24 the parity result and the prediction are on screen; after fp32 then int8 exports the
    user picks which file predicts, and the prediction names the file it used."""
    concat = next(r for r in list_runs(runs_copy) if r.model == "tiny_concat")
    app = make_app(runs_dir=runs_copy)
    shown = record_notifications(app)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("e")
        screen = app.screen
        screen.choose(concat.path)
        await pilot.pause()
        assert concat.name in screen_text(app)  # the run picker shows the whole run id
        for precision in ("fp32", "int8"):
            screen.query_one("#export-precision").value = precision
            screen.action_export()
            await pilot.pause()
            await wait_for(pilot, lambda: not screen.busy, 180, f"the {precision} export")
        assert [n["severity"] for n in shown] == ["information", "information"], shown
        fp32, int8 = (concat.path / "onnx" / name for name in ("tiny_concat.onnx", "tiny_concat-int8.onnx"))
        picker = screen.query_one("#predict-file")
        assert {value for _, value in picker._options if isinstance(value, str)} == {str(fp32.resolve()), str(int8.resolve())}
        assert picker.value == str(int8.resolve())  # the file just exported
        text = screen_text(app)
        assert "✓ parity passed tiny_concat-int8.onnx" in text and "int8: agreement" in text

        for file in (int8, fp32):
            picker.value = str(file.resolve())
            await pilot.pause()
            screen.action_predict_sample()
            await pilot.pause()
            await wait_for(pilot, lambda: not screen.busy, 60, "the prediction")
            text = screen_text(app)
            assert f"{file.name}:" in text and "test sample 0" in text, text
            top = str(screen.query_one("#predict-topk").visual)
            for line in top.splitlines()[3:]:  # every scored class is on screen, with its probability
                assert line.strip() and line.split()[0] in text and line.split()[1] in text


async def test_a_failed_low_precision_parity_check_names_the_option_the_form_offers(tmp_path):
    """Bug 3: the hint names 'parity samples' (and focuses it), not the CLI's --opset."""
    from mmzoo.errors import ExportError
    from mmzoo.onnx.parity import check
    from mmzoo.tui.screens.export import ExportDone

    figures = {"samples": 64, "max_abs_diff": 0.3, "argmax_agreement": 59 / 64, "disagreements": 5,
               "torch_val_accuracy": 0.9, "onnx_val_accuracy": 0.89, "val_accuracy_change": -0.01}
    with pytest.raises(ExportError) as failure:
        check(figures, "int8", "emoji_mix (ensemble, 3 members)")
    app = make_app(runs_dir=tmp_path)
    shown = record_notifications(app)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("e")
        screen = app.screen
        screen.query_one("#export-samples").value = "64"
        screen.post_message(ExportDone("export", error=str(failure.value), title=failure.value.title))
        await pilot.pause()
        error = shown[-1]
        assert error["severity"] == "error" and "failed its int8 parity check" in error["message"]
        assert "--opset" not in error["message"] and "raise 'parity samples' (now 64)" in error["message"]
        assert app.focused is screen.query_one("#export-samples")


async def test_quit_while_training_asks_first(tmp_path, tiny_registry_file):
    """Bug 4: q during training opens a confirmation; 'no' keeps training; after the run stops, q quits at once."""
    app = make_app(registry_file=str(tiny_registry_file), runs_dir=tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("t")
        screen = app.screen
        screen.pick("tiny_concat")
        await pilot.pause()
        await type_into(pilot, "#train-epochs", "30")
        await pilot.click("#train-start")
        await wait_for(pilot, lambda: screen.running, 10, "training to start")
        await pilot.press("q")
        await pilot.pause()
        assert app.screen.query_one("#confirm-question") is not None and "A run is training" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and screen.running and not screen.stop.is_set() and app.screen is screen
        await pilot.click("#train-cancel")
        await wait_for(pilot, lambda: not screen.running, 120, "the cancel")
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_a_fixed_form_drops_its_stale_message(tmp_path):
    """Bug 5: the 'lr must be' message goes once lr is valid again, while another bad field keeps its own."""
    app = make_app(runs_dir=tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("t")
        await type_into(pilot, "#train-lr", "-1")
        await type_into(pilot, "#train-epochs", "0")
        await pilot.click("#train-start")
        await pilot.pause()
        message = app.screen.query_one("#train-message")
        assert message.display and "lr must be" in str(message.visual) and "epochs must be" in str(message.visual)
        await type_into(pilot, "#train-lr", "0.003")
        await pilot.pause()
        assert "lr must be" not in str(message.visual) and "epochs must be" in str(message.visual)
        await type_into(pilot, "#train-epochs", "2")
        await pilot.pause()
        assert not message.display and "lr must be" not in screen_text(app)


async def test_runs_and_compare_at_80x24_show_results_kinds_and_every_matrix(trained_runs):
    """Bugs 6 and 9: the table shows every run with test acc and macro-F1; Compare shows kind and val beside test;
    ] and [ switch tabs without Tab; both confusion matrices can be reached; Home/End go to the first/last row."""
    runs = list_runs(trained_runs)
    app = make_app(runs_dir=trained_runs)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("r")
        screen = app.screen
        text = screen_text(app)
        assert "test acc" in text and "macro-F1" in text and "[ ] compare tabs" in text
        for run in runs:
            test = run.metrics["test"]
            assert run.name in text and f"{test['accuracy']:.4f}" in text and f"{test['macro_f1']:.4f}" in text
        table = screen.query_one("#runs-table")
        await pilot.press("end")
        assert table.cursor_row == len(runs) - 1 and table.scroll_x == 0
        await pilot.press("home")
        assert table.cursor_row == 0 and table.scroll_x == 0
        for _ in runs:
            await pilot.press("space", "down")
        await pilot.press("c")
        await pilot.pause()
        text = screen_text(app)
        assert "fusion:concat" in text and "text-only" in text and "val acc" in text and "ECE" in text
        for run in runs:
            assert f"{run.metrics['val']['accuracy']:.4f}" in text and f"{run.metrics['test']['ece']:.3f}" in text
        tabs = screen.query_one("#compare-tabs")
        await pilot.press("right_square_bracket")
        assert tabs.active == "tab-spec"
        assert "model.name" in screen_text(app)  # the two specs differ in their model
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert tabs.active == "tab-confusion"
        await pilot.pause()
        holder = screen.query_one("#confusion")
        heatmaps = list(screen.query(".heatmap"))
        assert len(heatmaps) == 2 and f"#1 {runs[0].name}" in screen_text(app)
        holder.scroll_end(animate=False)
        await pilot.pause()
        assert f"#2 {runs[1].name}" in screen_text(app)
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert tabs.active == "tab-metrics"


async def test_focus_shows_without_colour(tmp_path):
    """Bug 9: the focused button is reversed and a focused table's cursor row is reversed: no colour needed."""
    app = make_app(runs_dir=tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("t")
        start = app.screen.query_one("#train-start")
        start.focus()
        await pilot.pause()
        assert start.rich_style.reverse and start.rich_style.bold
        await pilot.press("r")
        table = app.screen.query_one("#runs-table")
        table.focus()
        await pilot.pause()
        assert table.get_component_rich_style("datatable--cursor").reverse
