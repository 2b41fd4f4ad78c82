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
# # 02 · Embeddings: ESM over amino acids, BiGCARP over Pfam domains
#
# The paper compares two representations of the same BGC biology:
#
# * **ESM** (amino-acid level) — every Pfam family is embedded through its HMM consensus
#   sequence, every A-domain through its own sequence (mean over residues, and mean over the
#   ten Stachelhaus specificity-code positions), at **every layer**;
# * **BiGCARP** (domain level) — a ByteNet masked language model over Pfam-token sentences,
#   trained three times: token embeddings initialised at random, from ESM (`esm`), and from
#   ESM and frozen (`esm-frozen`).
#
# Under `mini`/`smoke` the ESM is a small ESM-2 pretrained *here* by masked language modelling
# on the offline proteins (pretrained ESM weights cannot be downloaded offline); every table and
# figure names it. Under `full` it is `esm1b_t33_650M_UR50S`, as in the paper.

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
bigcarp_seed = None  # None: the profile's; another seed trains another sample of the same runs

# %%
import time

import pandas as pd

from crossgran import plots
from crossgran.analysis import features, spread, vector_geometry
from crossgran.cache import ArrayCache
from crossgran.data.tables import load_table
from crossgran.models import bigcarp, esm, runs
from crossgran.session import prepare, torch_device

# full: stops here if inputs are unobtainable
settings = prepare(profile, on_colab=ON_COLAB, bigcarp_seed=bigcarp_seed)
cache = ArrayCache(settings.cache_dir)
print(
    f"profile {settings.name}: ESM {settings.esm.spec}; "
    f"{len(load_table(settings, 'pfam_families'))} families, "
    f"{len(load_table(settings, 'adomains'))} A-domains, "
    f"{len(load_table(settings, 'domain_corpus'))} corpus sentences"
)

# %% [markdown]
# ## A local ESM-2, pretrained on the offline proteins
# Training data: the proteome and the NRPS proteins with every probed A-domain **cut out**
# (flanks of at least 30 residues kept). The model never trains on what it later embeds: not
# the A-domains of notebook 05's probe, and not the Pfam HMM consensus sequences (which are
# not proteins at all). 5% of the proteins (chosen by hash of the sequence) are held out, every
# fragment of a protein on the same side; held out by protein, not by homology cluster. A model
# that learned anything must beat the **unigram baseline** (amino-acid frequencies alone) on
# held-out masked-token perplexity.
# Like every training run here, the result is a **sample**: another CPU's floating-point
# path (AVX-512 or AVX2 kernels, say) trains slightly different weights, so every number
# derived from this model is checked against a measured spread, below and in 03–05.
# (A profile with a published ESM, such as `full`, skips the pretraining.)

# %%
# NBVAL_IGNORE_OUTPUT
started = time.perf_counter()
pretraining = runs.pretrain_local_esm(settings)
esm_history = None if pretraining is None else pretraining.history
model = esm.load_esm(settings.esm.spec, settings.models_dir, device=torch_device())
print(
    f"{model.model_id}: {model.num_layers} layers x {model.embed_dim}; ready in "
    f"{time.perf_counter() - started:.0f} s"
)

# %%
if pretraining is not None:
    corpus = pretraining.corpus
    print(
        f"{corpus['proteins']:,} proteins, {corpus['proteins_cut']:,} of them with A-domains cut "
        f"out ({corpus['occurrences_cut']:,} copies, {corpus['residues_excised']:,} residues): "
        f"{corpus['fragments']:,} fragments, {corpus['residues']:,} residues; held out: "
        f"{corpus['valid_proteins']:,} proteins, {corpus['valid_residues']:,} residues"
    )

# %%
# NBVAL_IGNORE_OUTPUT
if esm_history is not None:
    spread.without_timings(esm_history).to_csv(
        settings.results_dir / "esm_training.csv", index=False
    )
    print(
        f"held-out perplexity {esm_history['valid_perplexity'].iloc[-1]:.2f} vs unigram "
        f"baseline {esm_history['unigram_perplexity'].iloc[-1]:.2f} after "
        f"{int(esm_history['step'].iloc[-1])} steps"
    )

# %%
if esm_history is not None:
    figure = plots.training_curve(esm_history, x="step", title=f"local ESM-2 ({settings.esm.spec})")
    plots.save(figure, settings.figures_dir, "02_esm_training_curve")

# %% [markdown]
# ## ESM representations, every layer
# One forward pass returns every layer; batches are length-sorted under a token budget, and
# results are cached by (model weights, layers, pooling, sequence), so later notebooks and
# reruns read them back instantly.

# %%
# NBVAL_IGNORE_OUTPUT
pfam_esm, adomain_esm = runs.embed_tables(settings, model, cache)
print(
    f"Pfam consensus: {len(pfam_esm.ids)} sequences x {len(pfam_esm.layers)} layers; "
    f"{pfam_esm.stats}"
)
print(
    f"A-domains: {len(adomain_esm.ids)} sequences x {len(adomain_esm.layers)} layers; "
    f"{adomain_esm.stats}"
)

# %% [markdown]
# ### The untrained control
# Every claim about what ESM *learned* must beat the same architecture before learning: its
# initial weights (for the local model, the very initialisation its pretraining started from),
# embedding the same sequences the same way. Notebooks 04 and 05 probe both.

# %%
# NBVAL_IGNORE_OUTPUT
pfam_untrained, adomain_untrained = runs.embed_untrained_tables(settings, model, cache)
print(
    f"untrained {pfam_untrained.model_id}: {len(pfam_untrained.ids)} Pfam consensus and "
    f"{len(adomain_untrained.ids)} A-domain sequences embedded"
)

# %% [markdown]
# ### How much room do the family vectors use?
# The BiGCARP `esm` runs start from these family vectors, so their geometry bounds what ESM
# initialisation can hand over. Three numbers per table, beside a Gaussian table of the same
# shape: the mean pairwise cosine, the share of the squared norm in the one vector all families
# share (their mean), and the participation ratio of the centred table (how many dimensions
# its variance effectively spreads over). Mean pooling over residues alone already gives a
# large shared component, so the untrained network is the control that matters.

# %%
geometry = vector_geometry.geometry_table(
    {
        "trained ESM, last layer": pfam_esm.mean[pfam_esm.layer_index(-1)],
        "untrained ESM, last layer": pfam_untrained.mean[pfam_untrained.layer_index(-1)],
    },
    seed=settings.seed,
)
geometry.rename_axis("table").to_csv(settings.results_dir / "esm_family_geometry.csv")
print(geometry.round(3).to_string())

# %% [markdown]
# ### Does the ESM space already know which BGCs a family belongs to?
# Each Pfam family is coloured by the MIBiG product class it is most associated with
# (co-occurrence normalised by class size; `mixed` when no class holds half of it). A PCA of
# the last ESM layer shows whether amino-acid-level embeddings alone separate them.

# %%
association = features.family_class_association(
    load_table(settings, "mibig_domain_counts"), load_table(settings, "mibig_classes")
)
last_layer = pfam_esm.layers[-1]
figure = plots.pca_scatter(
    pfam_esm.mean[last_layer],
    pfam_esm.ids,
    association,
    title=f"Pfam families, ESM layer {last_layer} ({settings.esm.spec})",
)
plots.save(figure, settings.figures_dir, "02_pfam_esm_pca")

# %% [markdown]
# ## BiGCARP: three runs that differ only in the token-embedding initialisation
# Family vectors for the `esm` runs are the last-layer ESM means of the family consensus
# sequences (as in the paper, which used ESM-1b's last layer). All three runs share seed,
# architecture (the token table is as wide as ESM), data order and schedule.

# %%
# NBVAL_IGNORE_OUTPUT
started = time.perf_counter()
histories = runs.train_bigcarp_runs(settings, pfam_esm)
print(
    f"{len(histories)} runs of {settings.bigcarp.epochs} epochs in "
    f"{time.perf_counter() - started:.0f} s"
)

# %% [markdown]
# A BiGCARP run is one **sample** too: training is deterministic on one floating-point path,
# but another CPU (or kernel path) changes the last bits of the first steps and, a few hundred
# steps later, the model. The numbers below are this sample's; the checked line after them
# holds every training number of both models against the spread measured over several runs
# (`benchmarks/variance.py`, `results/<profile>/training_spread.csv`).

# %%
# NBVAL_IGNORE_OUTPUT
training = pd.concat(
    [spread.without_timings(history).assign(init=init) for init, history in histories.items()],
    ignore_index=True,
)
training.to_csv(settings.results_dir / "bigcarp_training.csv", index=False)
print(
    training.groupby("init", sort=False)[["valid_loss", "valid_masked_accuracy"]]
    .last()
    .round(3)
    .to_string()
)

# %%
# NBVAL_CHECK_OUTPUT
print(
    spread.summary_line(
        spread.check_results(settings, ["esm_training", "bigcarp_training"]), settings.name
    )
)

# %% [markdown]
# ## BiGCARP representations for the probes
# Saved for notebooks 03–05: layer 0 (embedder output) and every ByteNet layer, as
# (a) per-family averages over the corpus (and over the corpus without the MIBiG BGCs that
# label notebook 04's family probe), (b) per-sentence means (MIBiG BGCs; unordered bags
# averaged over several random orders), (c) the contextual AMP-binding token of each A-domain
# inside its parent NRPS protein. The same is exported from each run's **epoch-0 checkpoint**
# (`bigcarp_<init>_epoch0.npz`): the untrained model every learned representation is shown
# beside in notebooks 03–05.

# %%
# NBVAL_IGNORE_OUTPUT
started = time.perf_counter()
exported = runs.export_bigcarp_runs(settings)
print(f"representations of {', '.join(exported)} exported in {time.perf_counter() - started:.0f} s")
print(
    f"checkpoint rule '{settings.bigcarp.checkpoint}' (lowest held-out loss, or last): epochs "
    + ", ".join(f"{init} {exported[init].epoch}" for init in bigcarp.INIT_MODES)
)
