"""Figure functions, one per figure kind; each returns the figure and notebooks save it.

Why here and not in notebooks: the same figure is drawn for every profile and must look the
same in the stored notebook, in ``figures/`` and in a user's rerun on their own data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


def save(fig: plt.Figure, directory: Path, name: str) -> Path:
    """Save ``fig`` as ``<directory>/<name>.png`` (fixed dpi, no timestamp: stable bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    return path


def class_balance(classes: pd.DataFrame, class_names: tuple[str, ...]) -> plt.Figure:
    """BGCs per product class (multi-label: a BGC counts once per class) and labels per BGC."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    per_class = classes[list(class_names)].sum().sort_values(ascending=False)
    sns.barplot(x=per_class.index, y=per_class.to_numpy(), ax=left, color="#4C72B0")
    left.set(title="MIBiG BGCs per product class", ylabel="BGCs", xlabel="")
    left.tick_params(axis="x", rotation=30)
    n_labels = classes[list(class_names)].sum(axis=1).value_counts().sort_index()
    sns.barplot(x=[str(i) if i else "none" for i in n_labels.index], y=n_labels.to_numpy(), ax=right,
                color="#DD8452")
    right.set(title="classes per BGC", ylabel="BGCs", xlabel="number of classes")
    fig.tight_layout()
    return fig


def domain_lengths(families: pd.DataFrame, corpus: pd.DataFrame) -> plt.Figure:
    """Pfam HMM lengths (residues a token stands for) and tokens per corpus sequence by source."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.histplot(families["length"], bins=50, ax=left, color="#4C72B0")
    left.set(title="Pfam family HMM length", xlabel="match states (residues)", ylabel="families")
    sns.histplot(data=corpus, x="n_tokens", hue="source", bins=40, log_scale=(True, False),
                 element="step", ax=right)
    right.set(title="domain tokens per corpus sequence", xlabel="tokens", ylabel="sequences")
    fig.tight_layout()
    return fig
