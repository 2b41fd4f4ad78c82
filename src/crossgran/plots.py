"""Figure functions, one per figure kind; each returns the figure and notebooks save it.

Why here and not in notebooks: the same figure is drawn for every profile and must look the
same in the stored notebook, in ``figures/`` and in a user's rerun on their own data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
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


def training_curve(history: pd.DataFrame, x: str, title: str) -> plt.Figure:
    """Train / held-out loss against ``x``, with the unigram baseline when the history has one."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for column, label in (("train_loss", "train"), ("valid_loss", "held out")):
        if column in history:
            ax.plot(history[x], history[column], marker="o", markersize=3, label=label)
    if "unigram_perplexity" in history:
        ax.axhline(np.log(history["unigram_perplexity"].iloc[-1]), color="grey", linestyle="--",
                   label="unigram baseline")
    ax.set(title=title, xlabel=x, ylabel="masked-LM loss (nats)")
    ax.legend()
    fig.tight_layout()
    return fig


def pca_scatter(vectors: np.ndarray, ids: list[str], labels: pd.Series, title: str) -> plt.Figure:
    """First two principal components of ``vectors``, coloured by ``labels`` (indexed by id);
    ids without a label are drawn in light grey underneath."""
    from sklearn.decomposition import PCA

    coords = PCA(n_components=2, random_state=0).fit_transform(vectors)
    frame = pd.DataFrame({"PC1": coords[:, 0], "PC2": coords[:, 1],
                          "label": pd.Series(ids).map(labels).to_numpy()})
    fig, ax = plt.subplots(figsize=(6.5, 5))
    unlabelled = frame["label"].isna()
    ax.scatter(frame.loc[unlabelled, "PC1"], frame.loc[unlabelled, "PC2"], s=4, color="#dddddd",
               label="no class (rare)")
    sns.scatterplot(data=frame[~unlabelled], x="PC1", y="PC2", hue="label", s=10, ax=ax,
                    hue_order=sorted(frame.loc[~unlabelled, "label"].unique()))
    ax.set(title=title)
    ax.legend(fontsize=8, markerscale=1.5, loc="best")
    fig.tight_layout()
    return fig
