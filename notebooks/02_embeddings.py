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

from crossgran import bigcarp, datasets, esm, plots, spread
from crossgran.cache import ArrayCache
from crossgran.profiles import prepare

# full: stops here if inputs are unobtainable
settings = prepare(profile, on_colab=ON_COLAB, bigcarp_seed=bigcarp_seed)
cache = ArrayCache(settings.cache_dir)
families = datasets.load_table(settings, "pfam_families")
adomains = datasets.load_table(settings, "adomains")
corpus = datasets.load_table(settings, "domain_corpus")
print(f"profile {settings.name}: ESM {settings.esm.spec}; {len(families)} families, "
      f"{len(adomains)} A-domains, {len(corpus)} corpus sentences")

# %% [markdown]
# ## A local ESM-2, pretrained on the offline proteins
# Training data: the NRPS proteins, the proteome and the Pfam consensus sequences; 5% of the
# sequences (chosen by hash) are held out. A model that learned anything must beat the
# **unigram baseline** (amino-acid frequencies alone) on held-out masked-token perplexity.
# Like every training run here, the result is a **sample**: another CPU's floating-point
# path (AVX-512 or AVX2 kernels, say) trains slightly different weights, so every number
# derived from this model is checked against a measured spread, below and in 03–05.

# %%
# NBVAL_IGNORE_OUTPUT
started = time.perf_counter()
if settings.esm.spec.startswith(esm.LOCAL_PREFIX):
    nrps, proteome = datasets.profile_proteins(settings)
    training = [*nrps.values(), *proteome.values(), *families["consensus"]]
    esm_history = esm.train_local_esm(training, settings.esm,
                                      esm.local_model_dir(settings.esm.spec, settings.models_dir),
                                      seed=settings.seed)
model = esm.load_esm(settings.esm.spec, settings.models_dir, device="cpu")
print(f"{model.model_id}: {model.num_layers} layers x {model.embed_dim}; ready in "
      f"{time.perf_counter() - started:.0f} s")

# %%
# NBVAL_IGNORE_OUTPUT
if settings.esm.spec.startswith(esm.LOCAL_PREFIX):
    spread.without_timings(esm_history).to_csv(settings.results_dir / "esm_training.csv",
                                               index=False)
    final = esm_history.iloc[-1]
    print(f"held-out perplexity {final['valid_perplexity']:.2f} vs unigram baseline "
          f"{final['unigram_perplexity']:.2f} after {int(final['step'])} steps")

# %%
if settings.esm.spec.startswith(esm.LOCAL_PREFIX):
    figure = plots.training_curve(esm_history, x="step", title=f"local ESM-2 ({settings.esm.spec})")
    plots.save(figure, settings.figures_dir, "02_esm_training_curve")

# %% [markdown]
# ## ESM representations, every layer
# One forward pass returns every layer; batches are length-sorted under a token budget, and
# results are cached by (model weights, layers, pooling, sequence), so later notebooks and
# reruns read them back instantly.

# %%
# NBVAL_IGNORE_OUTPUT
layers = list(range(model.num_layers + 1))
batch_tokens = settings.esm.embed_batch_tokens  # None: the per-device default measured in crossgran.esm
pfam_esm = esm.embed(dict(zip(families["pfam"], families["consensus"])), model, layers, cache=cache,
                     batch_tokens=batch_tokens)
stachelhaus = {row.domain_id: [int(p) for p in str(row.stachelhaus_positions).split()]
               for row in adomains.itertuples()}
adomain_esm = esm.embed(dict(zip(adomains["domain_id"], adomains["sequence"])), model, layers,
                        positions=stachelhaus, cache=cache, batch_tokens=batch_tokens)
pfam_esm.save(settings.processed_dir / "esm_pfam.npz")
adomain_esm.save(settings.processed_dir / "esm_adomains.npz")
for name, result in (("Pfam consensus", pfam_esm), ("A-domains", adomain_esm)):
    print(f"{name}: {len(result.ids)} sequences x {len(result.layers)} layers; {result.stats}")

# %% [markdown]
# ### Does the ESM space already know which BGCs a family belongs to?
# Each Pfam family is coloured by the MIBiG product class it is most associated with
# (co-occurrence normalised by class size; `mixed` when no class holds half of it). A PCA of
# the last ESM layer shows whether amino-acid-level embeddings alone separate them.

# %%
association = datasets.family_class_association(datasets.load_table(settings, "mibig_domain_counts"),
                                                 datasets.load_table(settings, "mibig_classes"))
figure = plots.pca_scatter(pfam_esm.mean[layers[-1]], pfam_esm.ids, association,
                           title=f"Pfam families, ESM layer {layers[-1]} ({settings.esm.spec})")
plots.save(figure, settings.figures_dir, "02_pfam_esm_pca")

# %% [markdown]
# ## BiGCARP: three runs that differ only in the token-embedding initialisation
# Family vectors for the `esm` runs are the last-layer ESM means of the family consensus
# sequences (as in the paper, which used ESM-1b's last layer). All three runs share seed,
# architecture (the token table is as wide as ESM), data order and schedule.

# %%
# NBVAL_IGNORE_OUTPUT
family_vectors = dict(zip(pfam_esm.ids, pfam_esm.mean[layers[settings.bigcarp.esm_layer]]))
bigcarp.save_family_vectors(settings.processed_dir / "esm_family_vectors.npz", family_vectors)
vocab = bigcarp.Vocabulary.from_corpus(corpus)
histories = {}
for init in bigcarp.INIT_MODES:
    started = time.perf_counter()
    histories[init] = bigcarp.train_mlm(corpus, vocab, settings.bigcarp, init, family_vectors,
                                        settings.models_dir / f"bigcarp_{init}",
                                        seed=settings.bigcarp.seed)
    last = histories[init].iloc[-1]
    print(f"{init:10s} {len(histories[init])} epochs, {last['tokens_per_s']:,.0f} tokens/s, "
          f"{time.perf_counter() - started:.0f} s")

# %% [markdown]
# A BiGCARP run is one **sample** too: training is deterministic on one floating-point path,
# but another CPU (or kernel path) changes the last bits of the first steps and, a few hundred
# steps later, the model. The numbers below are this sample's; the checked line after them
# holds every training number of both models against the spread measured over several runs
# (`benchmarks/variance.py`, `results/<profile>/training_spread.csv`).

# %%
# NBVAL_IGNORE_OUTPUT
training = pd.concat([spread.without_timings(history).assign(init=init)
                      for init, history in histories.items()], ignore_index=True)
training.to_csv(settings.results_dir / "bigcarp_training.csv", index=False)
for init, history in histories.items():
    last = history.iloc[-1]
    print(f"{init:10s} valid loss {last['valid_loss']:.2f}  masked-token accuracy "
          f"{last['valid_masked_accuracy']:.3f}")

# %%
# NBVAL_CHECK_OUTPUT
print(spread.summary_line(spread.check_results(settings, ["esm_training", "bigcarp_training"]),
                          settings.name))

# %% [markdown]
# ## BiGCARP representations for the probes
# Saved for notebooks 03–05: layer 0 (embedder output) and every ByteNet layer, as
# (a) per-family averages over the corpus, (b) per-sentence means (MIBiG BGCs; unordered
# bags averaged over several random orders), (c) the contextual AMP-binding token of each
# A-domain inside its parent NRPS protein.

# %%
# NBVAL_IGNORE_OUTPUT
started = time.perf_counter()
for init in bigcarp.INIT_MODES:
    exported = bigcarp.export_representations(settings.models_dir / f"bigcarp_{init}", corpus,
                                              adomains, n_orders=settings.bigcarp.n_orders,
                                              seed=settings.seed)
    exported.save(settings.processed_dir / f"bigcarp_{init}.npz")
print(f"representations exported in {time.perf_counter() - started:.0f} s")
