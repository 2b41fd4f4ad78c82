# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Layers: where BiGCARP keeps what it learned
#
# Notebook 03 found that initialising BiGCARP's Pfam-token embeddings from ESM does not help
# the downstream probes. The paper's explanation has two parts, tested here layer by layer:
#
# * **Claim 2** — the token-embedding layer barely moves from its initialisation, while the
#   deeper layers hold the contextual knowledge. In the paper (linear CKA over Pfam families):
#   ESM-init embedder vs ESM-init last layer **0.285**, random-init embedder vs its last layer
#   **0.311**, ESM-init embedder vs random-init last layer **0.110**; the ESM-init embedding
#   table vs its own initial state after training **0.954** (that comparison of checkpoints
#   is notebook 03's).
# * **Claim 3** — deeper-layer representations are a more faithful record of what the model
#   learned than the embedding layer: probes read more from them.
#
# Every representation is a **Pfam family**: ESM embeds the family's HMM consensus (mean over
# residues, every layer); BiGCARP averages the family's contextual token vectors over the
# training corpus, at layer 0 (the embedder output: the token table through its input
# projection, the same vector in every context) and after each ByteNet block. The two
# BiGCARP runs compared differ only in how the token table started: random, or the ESM vector
# of each family (`esm`).
#
# Under `mini` the ESM is a small local ESM-2 and BiGCARP has 8 ByteNet layers (the paper:
# ESM-1b, 33 layers; BiGCARP, 32 layers), so depths are compared as *relative* depth.

# %%
# Colab only: clone the repository and install crossgran into this runtime, then let the
# machine choose the profile (`full` with a GPU and network, else `mini`). Elsewhere: no-op.
import os
import subprocess
import sys

ON_COLAB = "google.colab" in sys.modules
REPOSITORY, CLONE = "https://github.com/crossgran/crossgran", "/content/crossgran"
if ON_COLAB and not os.path.isdir(CLONE):
    subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, CLONE], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", CLONE], check=True)
if ON_COLAB:  # an editable install is importable only after a restart; the path works now
    sys.path.insert(0, f"{CLONE}/src")
    os.environ["CROSSGRAN_ROOT"] = CLONE

# %% tags=["parameters"]
profile = "mini"

# %%
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from crossgran import bigcarp, cka, datasets, esm, plots, probes, spread
from crossgran.profiles import prepare

settings = prepare(profile, on_colab=ON_COLAB)  # full: stops here if inputs are unobtainable
started = time.perf_counter()
# Every matrix product here is small: on a busy two-core machine, idle-spinning BLAS threads
# cost far more than they save (CKA matrices ran ~10x slower with two threads).
threadpool_limits(limits=1, user_api="blas")
seeds = tuple(range(settings.seed, settings.seed + settings.probe_seeds))
INITS = {"random": "random-init", "esm": "ESM-init"}
DEPTH = "BiGCARP layer (0 = embedder)"

esm_pfam = esm.EmbeddingResult.load(settings.processed_dir / "esm_pfam.npz")
exported = {init: bigcarp.Representations.load(settings.processed_dir / f"bigcarp_{init}.npz")
            for init in INITS}

# Pair families by accession, never by position: ESM has every Pfam family, BiGCARP only
# those in its corpus, each in its own order.
families, (esm_rows, *bigcarp_rows) = cka.shared_rows(esm_pfam.ids, *(exported[i].families for i in INITS))
esm_reps = {k: v[esm_rows] for k, v in esm_pfam.mean.items()}
reps = {init: {k: v[rows] for k, v in exported[init].family.items()}
        for init, rows in zip(INITS, bigcarp_rows)}
esm_last = max(esm_reps)
esm_init_layer = sorted(esm_reps)[settings.bigcarp.esm_layer]  # the layer that seeded `esm`
last = max(reps["random"])

# %%
# NBVAL_CHECK_OUTPUT
print(f"ESM {esm_pfam.model_id.split('@')[0]}: layers 0-{esm_last}; BiGCARP: embedder + {last} ByteNet "
      f"layers; token tables initialised from ESM layer {esm_init_layer}")
print(f"{len(families):,d} Pfam families in ESM and in both BiGCARP runs "
      f"(ESM {len(esm_pfam.ids):,d}; BiGCARP {len(exported['random'].families):,d} / "
      f"{len(exported['esm'].families):,d})")

# %% [markdown]
# ## Inside BiGCARP: layer × layer CKA, random-init vs ESM-init
# Linear CKA (Kornblith et al. 2019) between every pair of layers of one run, over the same
# families. Both runs share one 0–1 colour scale, so equal colours mean equal similarity; the
# third panel is ESM-init − random-init on a diverging scale. **What would support claim 2:**
# the embedder row (layer 0) fading quickly with depth — the deep layers are not a re-encoding
# of the token table — in *both* runs.

# %%
within = {}
for init, label in INITS.items():
    layers = sorted(reps[init])
    matrix = cka.cka_matrix([reps[init][k] for k in layers], [reps[init][k] for k in layers])
    within[label] = pd.DataFrame(matrix, index=pd.Index(layers, name=DEPTH),
                                 columns=pd.Index(layers, name=DEPTH))
    within[label].to_csv(settings.results_dir / f"cka_layers_{init}.csv")
figure = plots.cka_heatmaps(within, difference=("ESM-init", "random-init"))
plots.save(figure, settings.figures_dir, "04_cka_within_bigcarp")

# %% [markdown]
# The headline numbers, each with a 95% interval from resampling families
# (`cka.bootstrap_cka`: point ± 1.96 bootstrap standard errors; one seed, so every pair sees
# the same resamples). An interval built from the standard error alone needs far fewer
# replicates than a percentile interval: 200 estimate it to about ±5%. Debiased CKA
# (Nguyen et al. 2021), which does not drift upwards with width, is shown beside the
# embedder-vs-last values as a check that they are not a small-sample artefact.

# %%
# NBVAL_IGNORE_OUTPUT
pairs = {
    "random-init embedder vs its last layer": (reps["random"][0], reps["random"][last], 0.311),
    "ESM-init embedder vs its last layer": (reps["esm"][0], reps["esm"][last], 0.285),
    "ESM-init embedder vs random-init last layer": (reps["esm"][0], reps["random"][last], 0.110),
    "ESM-init embedder vs ESM (its initialisation)": (reps["esm"][0], esm_reps[esm_init_layer],
                                                      None),
    "random-init embedder vs ESM": (reps["random"][0], esm_reps[esm_init_layer], None),
    "ESM-init last layer vs ESM": (reps["esm"][last], esm_reps[esm_init_layer], None),
}
CKA_BOOTSTRAP = 200
headline = {}
for name, (x, y, paper) in pairs.items():
    headline[name] = cka.bootstrap_cka(x, y, CKA_BOOTSTRAP, settings.seed)
    point, low, high = headline[name]
    reference = f"   paper {paper:.3f}" if paper is not None else ""
    print(f"{name:46s} {point:.3f} [{low:.3f}, {high:.3f}]{reference}")
for init, label in INITS.items():
    print(f"debiased, {label} embedder vs last layer: "
          f"{cka.debiased_cka(reps[init][0], reps[init][last]):.3f}")
pd.DataFrame([{"pair": name, "linear_cka": point, "ci_low": low, "ci_high": high,
               "paper_linear_cka": pairs[name][2]}
              for name, (point, low, high) in headline.items()]).to_csv(
    settings.results_dir / "cka_headline.csv", index=False)

# %% [markdown]
# These CKA values come from one training sample of each run (notebook 02); the checked line
# holds them, and the layer-by-layer matrices, against the spread measured over several runs.

# %%
# NBVAL_CHECK_OUTPUT
print(spread.summary_line(spread.check_results(
    settings, ["cka_headline", "cka_layers_random", "cka_layers_esm"]), settings.name))

# %% [markdown]
# ## ESM layers vs BiGCARP layers
# CKA between each ESM layer (rows) and each BiGCARP layer (columns) on the same families.
# If the ESM-init embedder stays near its initialisation, its column should match ESM — and
# the layer that seeded it most — far better than the random-init embedder's, while the
# deeper BiGCARP layers of both runs should look alike, having learned from the same
# contexts.

# %%
cross = {}
records = []
for init, label in INITS.items():
    matrix = cka.cka_matrix([esm_reps[k] for k in sorted(esm_reps)],
                            [reps[init][k] for k in sorted(reps[init])])
    cross[label] = pd.DataFrame(matrix, index=pd.Index(sorted(esm_reps), name="ESM layer"),
                                columns=pd.Index(sorted(reps[init]), name=DEPTH))
    for (esm_layer, bigcarp_layer), value in cross[label].stack().items():
        records.append({"init": init, "esm_layer": esm_layer, "bigcarp_layer": bigcarp_layer,
                        "cka": value})
esm_vs_bigcarp = pd.DataFrame.from_records(records)
esm_vs_bigcarp["closest"] = esm_vs_bigcarp["cka"] == esm_vs_bigcarp.groupby(
    ["init", "bigcarp_layer"])["cka"].transform("max")
esm_vs_bigcarp.to_csv(settings.results_dir / "cka_esm_vs_bigcarp.csv", index=False)
figure = plots.cka_heatmaps(cross, difference=("ESM-init", "random-init"))
plots.save(figure, settings.figures_dir, "04_cka_esm_vs_bigcarp")

# %%
# NBVAL_IGNORE_OUTPUT
closest = esm_vs_bigcarp[esm_vs_bigcarp["closest"]].copy()
closest["row"] = closest["init"].map(INITS)
print("closest ESM layer (CKA) for each BiGCARP layer:")
print(closest.assign(cell=[f"{e} ({c:.3f})" for e, c in zip(closest["esm_layer"], closest["cka"])])
      .pivot(index="row", columns="bigcarp_layer", values="cell").to_string())

# %%
# NBVAL_CHECK_OUTPUT
print(spread.summary_line(spread.check_results(settings, ["cka_esm_vs_bigcarp"]), settings.name))

# %% [markdown]
# ## Layer-wise probes
# A linear probe (standardised logistic regression, balanced class weights) is trained on
# each layer of ESM and of both BiGCARP runs, on the *same* families and folds
# (stratified k-fold CV with the profile's folds and seeds), so the scores of different layers can
# be compared family by family. Two labels:
#
# 1. **Product-class association** (`datasets.family_class_association`): the MIBiG product
#    class a family co-occurs with most — a property of the *contexts* a domain appears in.
#    Multiclass. `mixed` is **excluded**, not a class: it means "no class holds half of this
#    family's BGCs", a statement about the spread of a label distribution rather than a
#    biological category, and its members are heterogeneous by construction, so a probe would
#    be asked to learn an arbitrary threshold. Classes with fewer than 10 families are left
#    out too (too few per test fold).
# 2. **GO molecular function** (InterPro's GO terms for the family): a property of the
#    *domain itself*. Multi-label over the terms held by at least 20 of the probed families
#    (so every test fold holds about four positives of each term or more);
#    only families with at least one molecular-function term are probed, because a family
#    without GO annotation is unannotated, not known to lack every function.
#
# Scores are macro-F1 (the paper's headline product-class metric; every class or term
# counts equally) with a 95% bootstrap interval over families, averaging the profile's seeds;
# macro-AUC without interval is in the table too.

# %%
MIN_CLASS_FAMILIES = 10
MIN_TERM_FAMILIES = 20

association = datasets.family_class_association(datasets.load_table(settings, "mibig_domain_counts"),
                                                datasets.load_table(settings, "mibig_classes"))
family_class = association.reindex(families)
class_sizes = family_class[family_class != "mixed"].value_counts()
kept_classes = class_sizes[class_sizes >= MIN_CLASS_FAMILIES].index
class_rows = np.flatnonzero(family_class.isin(kept_classes).to_numpy())
class_labels = family_class.to_numpy()[class_rows]

go = datasets.load_table(settings, "pfam_families").set_index("pfam")["go_molecular_function"]
go = go.reindex(families)
go_rows = np.flatnonzero(go.notna().to_numpy())
go_matrix = probes.frequent_label_matrix(go.iloc[go_rows], MIN_TERM_FAMILIES)

tasks = {
    "product-class association": ("multiclass", class_rows, class_labels),
    f"GO molecular function (≥{MIN_TERM_FAMILIES} families)": ("multilabel", go_rows,
                                                                go_matrix.to_numpy()),
}

# %%
# NBVAL_CHECK_OUTPUT
print(f"product class: {len(class_rows)} families in {len(kept_classes)} classes "
      f"({', '.join(f'{c} {n}' for c, n in class_sizes[kept_classes].items())}); "
      f"excluded: mixed {int((family_class == 'mixed').sum())}, "
      f"no association {int(family_class.isna().sum())}")
print(f"GO molecular function: {len(go_rows)} annotated families, {go_matrix.shape[1]} terms: "
      + ", ".join(f"{t} {n}" for t, n in go_matrix.sum().items()))

# %%
# NBVAL_IGNORE_OUTPUT
models = {f"ESM ({esm_pfam.model_id.split('@')[0]})": esm_reps,
          **{f"BiGCARP {label}": reps[init] for init, label in INITS.items()}}
jobs = [(task, model, layer) for task in tasks for model in models for layer in models[model]]
probe_started = time.perf_counter()
with Parallel(n_jobs=settings.probe_jobs) as parallel:  # independent probes, one process each
    results = parallel(delayed(probes.cross_validated_scores)(
        models[model][layer][tasks[task][1]], tasks[task][2], task=tasks[task][0],
        folds=settings.probe_folds, seeds=seeds) for task, model, layer in jobs)
    intervals = parallel(delayed(probes.bootstrap_ci)(
        result.y_true, result.oof_scores, "f1", settings.n_bootstrap, settings.seed)
        for result in results)
fits = dict(zip(jobs, results))
rows = [{"task": task, "model": model, "layer": layer,
         "relative_depth": layer / max(models[model]), "metric": "macro-F1",
         "mean": point, "ci_low": low, "ci_high": high, "auc": result.mean()["auc"],
         "n_rows": len(tasks[task][1]), "n_seeds": len(seeds), "folds": settings.probe_folds}
        for (task, model, layer), result, (point, low, high) in zip(jobs, results, intervals)]
layer_probes = pd.DataFrame.from_records(rows)
layer_probes.to_csv(settings.results_dir / "layer_probes.csv", index=False)
print(f"{len(fits)} probes in {time.perf_counter() - probe_started:.0f} s")

# %%
figure = plots.layer_curves(layer_probes, ylabel="macro-F1 (95% CI)")
plots.save(figure, settings.figures_dir, "04_layer_probes")

# %%
# NBVAL_IGNORE_OUTPUT
print(layer_probes.pivot_table(index=["task", "model"], columns="layer", values="mean", sort=False)
      .round(2).to_string())
peaks = layer_probes.loc[layer_probes.groupby(["task", "model"], sort=False)["mean"].idxmax()]
for peak in peaks.itertuples():
    print(f"{peak.task} / {peak.model}: peaks at layer {peak.layer} "
          f"(relative depth {peak.relative_depth:.2f}), macro-F1 {peak.mean:.2f} "
          f"[{peak.ci_low:.2f}, {peak.ci_high:.2f}]")

# %%
# NBVAL_CHECK_OUTPUT
print(spread.summary_line(spread.check_results(settings, ["layer_probes"]), settings.name))

# %% [markdown]
# ## The families in each space
# UMAP (umap-learn, `random_state` = the profile seed, one thread, so reruns draw the same
# picture) of the families with a product-class association, from the two embedders, the two
# last layers and ESM's initialising layer; `mixed` families in grey. If claim 2 holds, the
# ESM-init embedder should look like ESM, and the two last layers like each other.

# %%
labelled = np.flatnonzero(family_class.notna().to_numpy())
panels = {
    "ESM-init embedder": reps["esm"][0][labelled],
    "random-init embedder": reps["random"][0][labelled],
    f"ESM-init layer {last}": reps["esm"][last][labelled],
    f"random-init layer {last}": reps["random"][last][labelled],
    f"ESM layer {esm_init_layer}": esm_reps[esm_init_layer][labelled],
}
figure = plots.umap_panels(panels, family_class.to_numpy()[labelled], seed=settings.seed)
plots.save(figure, settings.figures_dir, "04_umap_families")

# %% [markdown]
# ## Verdicts
# **Claim 2** is supported when (a) the ESM-init embedder is more similar to ESM than the
# random-init embedder is (intervals apart: it still carries its initialisation), (b) it is
# more similar to ESM than its own last layer is (depth moves away from the initialisation),
# and (c) in both runs the embedder and the last layer are less than half similar (the upper
# end of the CKA interval below 0.5; the paper: 0.285 and 0.311). **Claim 3** is supported when, in both
# runs, the last layer beats the embedder on the product-class probe (paired bootstrap over
# families on the same folds, one-sided p < 0.05). That probe is the primary test because the
# label comes from the contexts a domain occurs in, which is what a masked language model over
# domain sentences learns from (MIBiG BGCs are part of its corpus). GO molecular function is a
# property of the domain's own sequence, which ESM reads and the ESM-init token table inherits:
# it is reported beside, as a secondary check, with where each curve peaks.

# %%
# NBVAL_IGNORE_OUTPUT
init_kept = headline["ESM-init embedder vs ESM (its initialisation)"]
init_control = headline["random-init embedder vs ESM"]
init_deep = headline["ESM-init last layer vs ESM"]
embedder_last = {label: headline[f"{label} embedder vs its last layer"] for label in INITS.values()}
checks = {
    "(a) ESM-init embedder closer to ESM than random-init embedder": init_kept[1] > init_control[2],
    "(b) ESM-init embedder closer to ESM than its last layer": init_kept[1] > init_deep[2],
    "(c) embedder vs last layer CKA < 0.5 in both runs": all(high < 0.5 for _, _, high
                                                              in embedder_last.values()),
}
print(f"The ESM-init embedder keeps CKA {init_kept[0]:.2f} with ESM (random-init embedder "
      f"{init_control[0]:.2f}, ESM-init last layer {init_deep[0]:.2f}); embedder vs last layer "
      f"{embedder_last['ESM-init'][0]:.2f} (ESM-init) and {embedder_last['random-init'][0]:.2f} "
      f"(random-init), paper 0.285 and 0.311.")

# %%
# NBVAL_CHECK_OUTPUT
for name, passed in checks.items():
    print(f"{name}: {'yes' if passed else 'no'}")
print(f"Claim 2 {'is' if all(checks.values()) else 'is NOT'} supported by this run")

# %%
# NBVAL_IGNORE_OUTPUT
primary, secondary = tasks
deeper_wins = {}
for task in tasks:
    for init, label in INITS.items():
        model = f"BiGCARP {label}"
        deep, embedder = fits[task, model, last], fits[task, model, 0]
        test = probes.paired_bootstrap(deep.y_true, deep.oof_scores, embedder.oof_scores, "f1",
                                       settings.n_bootstrap, settings.seed)
        deeper_wins[task, label] = test["p_value"] < 0.05
        peak = peaks[(peaks["task"] == task) & (peaks["model"] == model)].iloc[0]
        print(f"{task} / {label}: last layer − embedder macro-F1 {test['delta']:+.2f} "
              f"[{test['low']:+.2f}, {test['high']:+.2f}], p = {test['p_value']:.3f}; "
              f"peak at layer {peak.layer} of {last}")
wins = {task: sum(deeper_wins[task, label] for label in INITS.values()) for task in tasks}
print(f"last layer beats the embedder: {primary} in {wins[primary]} of {len(INITS)} runs; "
      f"{secondary} (secondary) in {wins[secondary]} of {len(INITS)}")

# %%
# NBVAL_CHECK_OUTPUT
print(f"Claim 3 {'is' if wins[primary] == len(INITS) else 'is NOT'} supported by this run")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"notebook ran in {time.perf_counter() - started:.0f} s")
