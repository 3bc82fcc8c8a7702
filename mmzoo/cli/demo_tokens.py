"""Provides the token (NER) part of `mmzoo demo`: two WNUT-17 taggers, their ensembles, the entity table.

The members are the registry's ``wnut17_minilm`` and ``wnut17_minilm_1ep`` (MiniLM fine-tuned for 3
epochs and for 1); finished runs of exactly these specs are reused. The combiner to report is chosen on val.
"""

from __future__ import annotations

from mmzoo.cli.output import err

TOKEN_MODELS = ("wnut17_minilm", "wnut17_minilm_1ep")


def token_demo(args, train_or_reuse) -> dict:
    """Train (or reuse) the taggers, build mean/weighted/vote ensembles, return the report to print."""
    from mmzoo.cli.tokens import compare_rows, ensemble_report
    from mmzoo.tokens.ensemble import build_token_ensemble
    from mmzoo.zoo.token_schema import COMBINERS

    members = [train_or_reuse(name, args, f"[tokens {i}/{len(TOKEN_MODELS) + 1}]")
               for i, name in enumerate(TOKEN_MODELS, 1)]
    err(f"[tokens {len(TOKEN_MODELS) + 1}/{len(TOKEN_MODELS) + 1}] word-level ensembles: {', '.join(COMBINERS)}")
    ensembles = [build_token_ensemble({"name": f"wnut17_pair_{c}", "kind": "ensemble",
                                       "recipe": {"members": list(TOKEN_MODELS)}, "combiner": {"name": c}},
                                      members, root=args.out) for c in COMBINERS]
    chosen = max(ensembles, key=lambda r: r.metrics["val"]["f1"])  # chosen on validation, never on test
    return {"rows": compare_rows(members + ensembles), "chosen": ensemble_report(chosen, [True] * len(members))}


def render_token_demo(report: dict) -> str:
    from mmzoo.cli.tokens import render_compare
    from mmzoo.tokens.metrics import render_table

    chosen = report["chosen"]
    best = next(m for m in chosen["members"] if m["name"] == chosen["best_member"])
    verdict = "matches or beats" if chosen["beat_best_member"] else "does NOT beat"
    return "\n".join([
        "WNUT-17 named-entity recognition (MiniLM fine-tuned; entity-level exact-match F1):",
        render_compare(report["rows"]),
        "",
        f"chosen on val: {chosen['run']} (combiner {chosen['combiner']['name']}); on test it {verdict} its best "
        f"member {best['name']} ({chosen['test']['f1']:.4f} vs {best['test_f1']:.4f}). Its test entities:",
        render_table(chosen["test"]),
    ])
