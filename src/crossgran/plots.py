"""Figure functions, one per figure kind; each returns the figure and notebooks save it.

Why here and not in notebooks: the same figure is drawn for every profile and must look the
same in the stored notebook, in ``figures/`` and in a user's rerun on their own data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.patches as mpatches
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
    sns.barplot(
        x=[str(i) if i else "none" for i in n_labels.index],
        y=n_labels.to_numpy(),
        ax=right,
        color="#DD8452",
    )
    right.set(title="classes per BGC", ylabel="BGCs", xlabel="number of classes")
    fig.tight_layout()
    return fig


def domain_lengths(families: pd.DataFrame, corpus: pd.DataFrame) -> plt.Figure:
    """Pfam HMM lengths (residues a token stands for) and tokens per corpus sequence by source."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.histplot(families["length"], bins=50, ax=left, color="#4C72B0")
    left.set(title="Pfam family HMM length", xlabel="match states (residues)", ylabel="families")
    sns.histplot(
        data=corpus,
        x="n_tokens",
        hue="source",
        bins=40,
        log_scale=(True, False),
        element="step",
        ax=right,
    )
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
        ax.axhline(
            np.log(history["unigram_perplexity"].iloc[-1]),
            color="grey",
            linestyle="--",
            label="unigram baseline",
        )
    ax.set(title=title, xlabel=x, ylabel="masked-LM loss (nats)")
    ax.legend()
    fig.tight_layout()
    return fig


def pca_scatter(vectors: np.ndarray, ids: list[str], labels: pd.Series, title: str) -> plt.Figure:
    """First two principal components of ``vectors``, coloured by ``labels`` (indexed by id);
    ids without a label are drawn in light grey underneath."""
    from sklearn.decomposition import PCA

    coords = PCA(n_components=2, random_state=0).fit_transform(vectors)
    frame = pd.DataFrame(
        {"PC1": coords[:, 0], "PC2": coords[:, 1], "label": pd.Series(ids).map(labels).to_numpy()}
    )
    fig, ax = plt.subplots(figsize=(6.5, 5))
    unlabelled = frame["label"].isna()
    ax.scatter(
        frame.loc[unlabelled, "PC1"],
        frame.loc[unlabelled, "PC2"],
        s=4,
        color="#dddddd",
        label="no class (rare)",
    )
    sns.scatterplot(
        data=frame[~unlabelled],
        x="PC1",
        y="PC2",
        hue="label",
        s=10,
        ax=ax,
        hue_order=sorted(frame.loc[~unlabelled, "label"].unique()),
    )
    ax.set(title=title)
    ax.legend(fontsize=8, markerscale=1.5, loc="best")
    fig.tight_layout()
    return fig


def cka_heatmaps(
    matrices: dict[str, pd.DataFrame],
    difference: tuple[str, str] | None = None,
) -> plt.Figure:
    """One annotated heat map per CKA matrix (index = rows, columns = columns, their ``name`` as
    axis labels) on one fixed 0–1 scale, so equal colours mean equal similarity in every panel;
    with ``difference=(a, b)`` a last panel shows a − b on a diverging scale centred at 0."""
    panels = list(matrices.items())
    if difference is not None:
        first, second = difference
        delta = matrices[first] - matrices[second]
        delta.index.name = matrices[first].index.name
        delta.columns.name = matrices[first].columns.name
        panels.append((f"{first} − {second}", delta))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    for number, (ax, (title, matrix)) in enumerate(zip(axes[0], panels, strict=True)):
        is_delta = difference is not None and number == len(panels) - 1
        limit = float(np.abs(matrix.to_numpy()).max()) or 1.0
        style = (
            {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
            if is_delta
            else {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}
        )
        sns.heatmap(
            matrix,
            ax=ax,
            annot=max(matrix.shape) <= 12,
            fmt=".2f",
            square=True,
            annot_kws={"fontsize": 6},
            cbar_kws={"shrink": 0.7},
            **style,
        )
        ax.invert_yaxis()  # layer 0 at the bottom-left, depth growing up and right
        ax.set(title=title, xlabel=matrix.columns.name or "", ylabel=matrix.index.name or "")
    fig.tight_layout()
    return fig


def layer_curves(
    table: pd.DataFrame,
    panel: str = "task",
    line: str = "model",
    x: str = "relative_depth",
    y: str = "mean",
    low: str = "ci_low",
    high: str = "ci_high",
    ylabel: str = "score",
) -> plt.Figure:
    """Score against depth, one panel per ``panel`` value and one line per ``line`` value, with
    the ``low``–``high`` interval as a band; relative depth puts models of different depth on
    one axis (0 = embedder / first layer, 1 = last layer)."""
    names = list(dict.fromkeys(table[panel]))
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for label, rows in table[table[panel] == name].groupby(line, sort=False):
            rows = rows.sort_values(x)
            ax.plot(rows[x], rows[y], marker="o", markersize=4, label=label)
            ax.fill_between(rows[x], rows[low], rows[high], alpha=0.2)
        ax.set(title=name, xlabel="relative depth (layer / last layer)", ylabel=ylabel)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def umap_panels(
    panels: dict[str, np.ndarray], labels: np.ndarray, seed: int, background: str = "mixed"
) -> plt.Figure:
    """A UMAP of each representation of the same rows, side by side, coloured by ``labels``.

    umap-learn runs with ``random_state=seed`` and ``n_jobs=1`` (its seeded mode is only
    reproducible single-threaded); rows labelled ``background`` are drawn in light grey
    underneath, and every panel uses the same colour for the same label.
    """
    import warnings

    with warnings.catch_warnings():  # umap imports tqdm.auto, which warns without ipywidgets
        warnings.simplefilter("ignore")
        import umap

    classes = sorted(set(labels) - {background})
    colours = dict(zip(classes, sns.color_palette("tab10", len(classes)), strict=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.6), squeeze=False)
    grey = labels == background
    for ax, (title, vectors) in zip(axes[0], panels.items(), strict=True):
        coords = umap.UMAP(random_state=seed, n_jobs=1).fit_transform(vectors)
        ax.scatter(coords[grey, 0], coords[grey, 1], s=3, color="#d9d9d9", label=background)
        for name in classes:
            chosen = labels == name
            ax.scatter(coords[chosen, 0], coords[chosen, 1], s=4, color=colours[name], label=name)
        ax.set(title=title, xticks=[], yticks=[])
        ax.title.set_fontsize(9)
    axes[0][-1].legend(fontsize=7, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def mlm_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Masked-LM loss (train solid, held out dashed) and held-out masked-token accuracy per
    epoch, one colour per run, so runs that differ only in initialisation share one axis."""
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    # the default palette has 10 colours, more than there are runs
    for colour, (name, history) in zip(sns.color_palette(), histories.items(), strict=False):
        loss_ax.plot(
            history["epoch"],
            history["train_loss"],
            marker="o",
            markersize=3,
            color=colour,
            label=f"{name} train",
        )
        loss_ax.plot(
            history["epoch"],
            history["valid_loss"],
            marker="o",
            markersize=3,
            color=colour,
            linestyle="--",
            label=f"{name} held out",
        )
        accuracy_ax.plot(
            history["epoch"],
            history["valid_masked_accuracy"],
            marker="o",
            markersize=3,
            color=colour,
            label=name,
        )
    loss_ax.set(title="masked-LM loss", xlabel="epoch", ylabel="cross-entropy (nats)")
    accuracy_ax.set(title="held-out masked-token accuracy", xlabel="epoch", ylabel="accuracy")
    loss_ax.legend(fontsize="small")
    accuracy_ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def cka_evolution(evolution: pd.DataFrame, value: str = "linear_cka") -> plt.Figure:
    """CKA per epoch, one panel per ``comparison`` and one line per ``run``: how far each
    layer has moved from where it started, and from the others, as training proceeds."""
    comparisons = list(dict.fromkeys(evolution["comparison"]))
    fig, axes = plt.subplots(
        1, len(comparisons), figsize=(4.5 * len(comparisons), 3.6), sharey=True, squeeze=False
    )
    for ax, comparison in zip(axes[0], comparisons, strict=True):
        part = evolution[evolution["comparison"] == comparison]
        sns.lineplot(data=part, x="epoch", y=value, hue="run", marker="o", ax=ax)
        ax.set(title=comparison.replace("_", " "), ylim=(0, 1.05), ylabel=value.replace("_", " "))
    fig.tight_layout()
    return fig


def metric_bars(
    summary: pd.DataFrame, group: str, hue: str, title: str, value: str = "mean"
) -> plt.Figure:
    """Grouped bars of ``value`` with 95% CI whiskers (``ci_low``/``ci_high``): one group per
    ``group`` level, one bar per ``hue`` level, in the order they first appear."""
    groups = list(dict.fromkeys(summary[group]))
    hues = list(dict.fromkeys(summary[hue]))
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(min(12.0, 2.5 + 0.28 * len(groups) * len(hues)), 3.8))
    for k, (colour, level) in enumerate(
        zip(sns.color_palette(n_colors=len(hues)), hues, strict=True)
    ):
        part = summary[summary[hue] == level].set_index(group).reindex(groups)
        x = np.arange(len(groups)) + (k - (len(hues) - 1) / 2) * width
        errors = np.vstack([part[value] - part["ci_low"], part["ci_high"] - part[value]])
        ax.bar(
            x,
            part[value],
            width=width,
            color=colour,
            label=str(level),
            yerr=errors,
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
    ax.set_xticks(np.arange(len(groups)), groups, rotation=25, ha="right")
    ax.set(title=title, ylabel=value, ylim=(0, 1.0))
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def beside_controls(summary: pd.DataFrame, metric: str, title: str) -> plt.Figure:
    """:func:`metric_bars` of one metric with every representation's controls beside it: the
    bars of ``<name>``, ``<name>~random`` and ``<name>~untrained`` share a group."""
    rows = summary[summary["metric"] == metric]
    split = rows["feature_set"].str.split("~", n=1, expand=True).reindex(columns=[0, 1])
    rows = rows.assign(representation=split[0], variant=split[1].fillna("as probed"))
    return metric_bars(rows, group="representation", hue="variant", title=title)


def property_heatmap(summary: pd.DataFrame, metric: str, title: str) -> plt.Figure:
    """Heat map of ``metric`` (rows: ``property``, columns: ``feature_set``), annotated."""
    part = summary[summary["metric"] == metric]
    table = part.pivot(index="property", columns="feature_set", values="mean")
    table = table.reindex(
        index=list(dict.fromkeys(part["property"])),
        columns=list(dict.fromkeys(part["feature_set"])),
    )
    fig, ax = plt.subplots(figsize=(1.1 * table.shape[1] + 2.5, 0.55 * table.shape[0] + 1.8))
    sns.heatmap(
        table,
        annot=True,
        fmt=".2f",
        cmap="viridis",
        vmin=0.5 if metric == "auc" else 0,
        vmax=1,
        ax=ax,
        cbar_kws={"label": metric},
    )
    ax.set(title=title, xlabel="", ylabel="")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


# Probes run once per feature set and shared by every probe's comparisons (Pfam2vec's random
# forest, the paper's baseline): drawn in every probe's figure.
SHARED_PROBES = ("random forest",)


def probe_views(summary: pd.DataFrame) -> dict[str, tuple[str, pd.DataFrame]]:
    """Probe label -> (figure-name suffix, rows to draw) of a summary with a ``probe`` column:
    each probe that read the representations (linear probe, MLP, BiLSTM) with the shared
    baselines' rows (:data:`SHARED_PROBES`). The linear probe's suffix is "" (its figures keep
    their names on every profile); the others get ``_<label as a slug>``, e.g.
    ``_mlp_512_256``."""
    shared = summary["probe"].isin(SHARED_PROBES)
    views = {}
    for probe in dict.fromkeys(summary.loc[~shared, "probe"]):
        slug = "".join(c if c.isalnum() else "_" for c in probe.lower())
        suffix = "" if probe == "linear probe" else "_" + "_".join(filter(None, slug.split("_")))
        views[probe] = (suffix, summary[shared | (summary["probe"] == probe)])
    return views


def record_prediction(
    name: str,
    genes: pd.DataFrame,
    domains: pd.DataFrame,
    classes: pd.DataFrame,
    labels: dict[str, str],
) -> plt.Figure:
    """A record's genes as arrows with their Pfam domains coloured by family (left), and its
    product-class probabilities from each feature set (right): what ``crossgran predict``
    draws per record.

    ``genes``: key, label, start, end, strand (nucleotide coordinates; NaN for a protein FASTA,
    whose genes are then laid end to end at 3 nt per residue, all forward). ``domains``:
    protein (= gene key), pfam, pfam_name, start, end (residues in the protein). ``classes``:
    class and one probability column per key of ``labels``.
    """
    layout = genes.copy()
    if layout["start"].isna().any():
        lengths = domains.groupby("protein")["end"].max().reindex(layout["key"]).fillna(100) * 3
        layout["end"] = lengths.cumsum().to_numpy() + 60 * np.arange(len(layout))
        layout["start"] = layout["end"] - lengths.to_numpy()
        layout["strand"] = 1
    layout = layout.set_index("key")
    families = list(dict.fromkeys(domains["pfam"]))
    palette = dict(zip(families, sns.color_palette("tab20", len(families)), strict=True))
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [3, 1.3]}
    )
    height = 0.5
    for gene in layout.itertuples():
        forward = gene.strand >= 0
        length = gene.end - gene.start
        head = min(length * 0.25, 400)
        x0, dx = (gene.start, length) if forward else (gene.end, -length)
        left.add_patch(
            mpatches.FancyArrow(
                x0,
                0,
                dx,
                0,
                width=height,
                head_width=height * 1.4,
                head_length=head,
                length_includes_head=True,
                facecolor="#eeeeee",
                edgecolor="#555555",
                lw=0.6,
            )
        )
    for hit in domains.itertuples():
        gene = layout.loc[hit.protein]
        if gene.strand >= 0:
            x0, x1 = gene.start + 3 * hit.start, gene.start + 3 * hit.end
        else:
            x0, x1 = gene.end - 3 * hit.end, gene.end - 3 * hit.start
        left.add_patch(
            mpatches.Rectangle(
                (x0, -height / 2 * 0.8),
                x1 - x0,
                height * 0.8,
                facecolor=palette[hit.pfam],
                edgecolor="none",
            )
        )
    left.set_xlim(layout["start"].min() - 200, layout["end"].max() + 200)
    left.set_ylim(-1.2, 1.2)
    left.set_yticks([])
    left.set_xlabel("position (nt)")
    left.set_title(f"{name}: {len(layout)} genes, {len(domains)} Pfam domains")
    counts = domains["pfam"].value_counts()
    names = domains.drop_duplicates("pfam").set_index("pfam")["pfam_name"]
    shown = counts.index[:12]
    left.legend(
        handles=[
            mpatches.Patch(color=palette[p], label=f"{names[p]} ({counts[p]})") for p in shown
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        ncol=4,
        fontsize=7,
        frameon=False,
    )
    long = classes.melt(id_vars="class", var_name="features", value_name="probability")
    long["features"] = long["features"].map(labels)
    sns.barplot(data=long, y="class", x="probability", hue="features", ax=right, orient="h")
    right.set(xlim=(0, 1), title="product class", ylabel="")
    right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
