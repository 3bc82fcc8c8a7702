"""Provides ensemble diversity measures: pairwise disagreement and correlation of members' errors."""

from __future__ import annotations

import numpy as np


def diversity(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Diversity of M members from their probabilities (N, M, C) and the true labels (N,).

    pairwise_disagreement[i][j]: share of samples where members i and j predict different
    classes. error_correlation[i][j]: Pearson correlation of their 0/1 error indicators;
    None where a member makes no errors or errs everywhere (the correlation is undefined).
    The means run over distinct pairs (i < j), skipping undefined ones; None below two members.
    """
    preds = np.asarray(probs).argmax(axis=-1)  # (N, M)
    m = preds.shape[1]
    disagreement = (preds[:, :, None] != preds[:, None, :]).mean(axis=0)  # (M, M)
    errors = (preds != np.asarray(labels)[:, None]).astype(np.float64)  # (N, M)
    centred = errors - errors.mean(axis=0)  # (N, M)
    norms = np.sqrt((centred**2).sum(axis=0))  # (M,)
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = (centred.T @ centred) / np.outer(norms, norms)  # (M, M)
    defined = np.outer(norms > 0, norms > 0)
    correlation = np.where(defined, np.clip(correlation, -1.0, 1.0), np.nan)
    upper = np.triu_indices(m, k=1)
    pair_corr = correlation[upper]
    pair_corr = pair_corr[~np.isnan(pair_corr)]
    return {
        "pairwise_disagreement": disagreement.tolist(),
        "error_correlation": [[None if np.isnan(v) else float(v) for v in row] for row in correlation],
        "mean_disagreement": float(disagreement[upper].mean()) if m > 1 else None,
        "mean_error_correlation": float(pair_corr.mean()) if len(pair_corr) else None,
    }
