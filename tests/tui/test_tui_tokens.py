"""The TUI on token runs (NER): entity F1 in the runs table, the per-type table in the detail, token compare."""

from __future__ import annotations

import shutil

import pytest

from mmzoo.runs.folders import list_runs
from mmzoo.tui.app import make_app
from tui.tuikit import SMALL, record_notifications, screen_text, train_toy_taggers, wait_for


@pytest.fixture(scope="module")
def token_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tui-tokens")
    return root, train_toy_taggers(root)


async def test_a_token_run_shows_entity_f1_its_decoding_and_the_per_type_table(token_runs):
    root, (first, _, pair) = token_runs
    app = make_app(runs_dir=root / "runs")
    async with app.run_test(size=(100, 60)) as pilot:
        await pilot.press("r")
        screen = app.screen
        await pilot.pause()
        text = screen_text(app)
        assert f"{first.metrics['test']['f1']:.4f}" in text  # the F1 column holds the entity F1
        screen.focus_run(first.path)
        await pilot.press("enter")
        await pilot.pause()
        text = screen_text(app)
        assert "entity F1" in text and f"{first.metrics['val']['f1']:.4f}" in text and "BIO tags" in text
        assert "decoding: P(O) x" in text and "micro avg" in text and "PER" in text and "LOC" in text
        await pilot.press("escape")
        screen.focus_run(pair.path)
        await pilot.press("enter")
        await pilot.pause()
        text = screen_text(app)
        assert "combiner mean" in text and "best member on val" in text
        assert f"{pair.metrics['test']['f1']:.4f}" in text and "weight 0.50" in text


async def test_compare_token_runs_and_refuse_a_mixture(token_runs, trained_runs, tmp_path):
    root, taggers = token_runs
    mixed = tmp_path / "runs"
    shutil.copytree(trained_runs, mixed)
    shutil.copytree(root / "runs", mixed, dirs_exist_ok=True)
    app = make_app(runs_dir=mixed)
    shown = record_notifications(app)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("r")
        screen = app.screen
        await pilot.pause()
        for run in taggers:
            screen.focus_run(mixed / run.path.relative_to(root / "runs"))  # the copy's folder
            await pilot.press("space")
        await pilot.press("c")
        await pilot.pause()
        assert not [n for n in shown if n["severity"] == "error"], shown
        table = screen.query_one("#compare-table")
        assert table.row_count == 3
        shown_rows = " ".join(str(table.get_row_at(i)) for i in range(3))
        assert all(f"{run.metrics['val']['f1']:.4f}" in shown_rows for run in taggers)  # entity F1, val
        perclass = screen.query_one("#perclass-table")
        assert {str(perclass.get_row_at(i)[0]) for i in range(perclass.row_count)} == {"LOC", "PER"}
        classifier = next(r for r in list_runs(mixed) if r.model == "tiny_concat")
        screen.focus_run(classifier.path)
        await pilot.press("space", "c")
        await pilot.pause()
        assert shown[-1]["severity"] == "error" and "token runs only" in shown[-1]["message"]


async def test_export_a_token_run_then_tag_text_and_a_test_sentence(token_runs, tmp_path):
    root, (first, _, _) = token_runs
    out = tmp_path / "exports"
    app = make_app(runs_dir=root / "runs")
    shown = record_notifications(app)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("e")
        screen = app.screen
        screen.choose(first.path)
        screen.action_bench()  # not for token exports: a message, not a crash
        await wait_for(pilot, lambda: not screen.busy, 60, "the refusal")
        assert shown[-1]["severity"] == "error" and "token exports are fp32 only" in shown[-1]["message"]
        screen.query_one("#export-folder").value = str(out)
        screen.action_export()
        await pilot.pause()
        await wait_for(pilot, lambda: not screen.busy, 180, "the export")
        assert (out / "toy_tagger_s0.onnx").exists(), shown
        assert f"val entity F1 {first.metrics['val']['f1']:.4f}" in screen_text(app)
        screen.query_one("#predict-text").value = "alice went to oslo"
        screen.action_predict_own()
        await pilot.pause()
        await wait_for(pilot, lambda: not screen.busy, 60, "the prediction")
        text = screen_text(app)
        assert "PER  alice" in text and "LOC  oslo" in text, text
        screen.query_one("#predict-index").value = "0"
        screen.action_predict_sample()
        await pilot.pause()
        await wait_for(pilot, lambda: not screen.busy, 60, "the prediction")
        assert "test sentence 0" in screen_text(app) and "true entities" in screen_text(app)
        assert not [n for n in shown[1:] if n["severity"] == "error"], shown
