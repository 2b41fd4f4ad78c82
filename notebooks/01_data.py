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
# # 01 · Data: real BGCs, Pfam families and NRPS A-domains, offline
#
# *Cross-Granularity Representations for Biological Sequences: Insights from ESM and BiGCARP*
# (Xiao et al., BIBM 2025) compares two views of the same biology: **ESM** reads amino acids,
# **BiGCARP** reads the ordered Pfam domains of a biosynthetic gene cluster (BGC). Every later
# notebook needs the same tables, built here:
#
# | table | what it is for |
# |---|---|
# | `pfam_families` | the domain vocabulary; each family's HMM consensus is the sequence ESM embeds (notebooks 02–04) |
# | `mibig_classes` (+ `mibig_domain_counts`) | MIBiG product classes: the BGC-level probe of notebooks 03 and 05 |
# | `adomains` | NRPS adenylation domains and their substrates: the intermediate-level probe of notebook 05 |
# | `domain_corpus` | the Pfam-token sentences BiGCARP is trained on (notebooks 02–03) |
# | `compounds` (+ `halogenase_bgcs`) | MIBiG compound structures, and the BGCs with a tryptophan halogenase labelled by them: notebook 05's halogenation task |
#
# With the `mini` and `smoke` profiles everything comes from **pinned PyPI packages** (GECCO's
# Pfam 35.0 BGC subset and MIBiG table, PARAS's curated A-domains, pyhmmer's test proteome),
# each checked against its sha256; no download from MIBiG or Pfam is needed. The `full` profile
# (a networked GPU machine) replaces GECCO's Pfam subset and MIBiG table with Pfam-A 35.0 and
# the MIBiG 3.1 release (downloaded once, hashes locked in `data/full.lock.json`): its MIBiG
# sentences are the BGCs' domains in gene order (hmmsearch over the GenBank proteins,
# `ordered=True`), its compounds come with the release, and its halogenation rows are the
# halogenase domains themselves (`halogenase_domains`, with their protein sequences). Offline,
# the compound structures come from the pinned `nplinker` wheel (MIBiG 2.0's compound table),
# and a halogenation row is a BGC whose GECCO composition holds PF04820.

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

from crossgran import plots
from crossgran.data.adomains import PROPERTIES
from crossgran.data.mibig import PROBE_CLASSES
from crossgran.data.tables import build_all, load_table
from crossgran.session import prepare

settings = prepare(profile, on_colab=ON_COLAB)  # full: stops here if inputs are unobtainable
print(f"profile {settings.name}: tables -> {settings.processed_dir.relative_to(settings.root)}")

# %% [markdown]
# ## Build every table
# The builder downloads the two data wheels with `pip download --no-deps` (only on the first
# run; a changed byte stops the run with the expected and actual hash), runs `hmmsearch`
# with each family's gathering cutoff over the NRPS proteins and the proteome (cached by
# content, so a rerun skips it), resolves overlapping hits by best score and writes the tables
# and `MANIFEST.json`.

# %%
# NBVAL_IGNORE_OUTPUT
started = time.perf_counter()
report = build_all(settings)
print(f"built in {time.perf_counter() - started:.1f} s")

# %% [markdown]
# ## Counts
# Expected with `mini`: 2,766 Pfam families, 1,870 MIBiG BGCs, 3,653 A-domains. CI re-executes
# this notebook and compares the cell below with the stored output.

# %%
# NBVAL_CHECK_OUTPUT
for key, value in report.counts.items():
    print(f"{key:32s} {value:>8,d}")

# %% [markdown]
# ## What the raw files needed, said out loud
# Nothing is corrected silently. Each line names a quirk of the inputs and what was done:
#
# * **MIBiG classes** (`types.tsv`, CRLF line endings) — multi-label rows stay multi-label.
#   GECCO's table knows six classes and leaves MIBiG's seventh, *Other*, empty; the BGCs it
#   leaves empty that NPLinker's MIBiG 2.0 compound table classes as Other only (196 of 236)
#   get the class Other, the rest stay *unlabelled* and are left out of class probes, never
#   given a guessed class.
# * **MIBiG compositions** hold per-BGC domain *frequencies*, not counts: we recover the
#   smallest integer counts with the same ratios. The order of domains in these BGCs is not
#   known, so their corpus rows carry `ordered=False`.
# * **NRPS proteins** (`proteins.fasta`) contain gap characters easel refuses; they are removed.
# * **Ids** of A-domains and proteins are `|`-joined synonyms; a domain is matched to its parent
#   through *any* synonym.
# * **Substrates**: some labels list several substrates (`isoleucine|valine`). A property is 1
#   (or 0) only when it holds for all (or none) of them and is left undefined otherwise; one
#   SMILES in PARAS does not parse and its domains get no properties.

# %%
for note in report.notes:
    print("•", note)

# %% [markdown]
# ## A look at each table

# %%
families = load_table(settings, "pfam_families")
families.head(3)

# %%
classes = load_table(settings, "mibig_classes")
classes.head(3)

# %%
adomains = load_table(settings, "adomains")
adomains.drop(columns=["sequence", "extended_signature"]).head(3)

# %% [markdown]
# Substrate properties used by notebook 05 (definitions in `crossgran.data.adomains`):
# `is_aromatic` — any aromatic atom; `has_heterocycle` — any ring with a non-carbon atom;
# `high_polarity` — Wildman–Crippen logP ≤ −1.0 (among canonical amino acids: Arg, Asn, Asp,
# Gln, Ser, Thr); `is_Val`, `is_Gly`; `is_canonical_aa` — one of the 20 proteinogenic amino
# acids. Fraction positive among defined labels:

# %%
# NBVAL_CHECK_OUTPUT
print(adomains[list(PROPERTIES)].mean().round(3).to_string())

# %%
corpus = load_table(settings, "domain_corpus")
corpus.assign(valid=corpus["split"].eq("valid")).groupby("source").agg(
    sequences=("seq_id", "size"),
    tokens=("n_tokens", "sum"),
    ordered=("ordered", "all"),
    valid=("valid", "sum"),
)

# %% [markdown]
# ## Class balance
# The product-class probe is multi-label and imbalanced: polyketides and NRPs dominate, and a
# sizeable share of BGCs carries two classes. Macro-averaged metrics (notebooks 03, 05) weigh
# each class equally for that reason.

# %%
figure = plots.class_balance(classes, PROBE_CLASSES)
plots.save(figure, settings.figures_dir, "01_class_balance")

# %% [markdown]
# ## Domain lengths and sentence lengths
# A Pfam token stands for 30–700 residues of protein: one BiGCARP token summarises what ESM
# sees as hundreds of positions — the granularity gap the paper is about. Right: how many
# tokens each training sentence has, per source.

# %%
figure = plots.domain_lengths(families, corpus)
plots.save(figure, settings.figures_dir, "01_domain_lengths")

# %% [markdown]
# ## Manifest
# `MANIFEST.json` lists every input (source, version, licence, sha256) and every output table
# (rows, sha256). The `mini` manifest is committed, so a rerun that changes any table shows up
# in `git diff`.

# %%
# NBVAL_CHECK_OUTPUT
import json

manifest = json.loads(settings.manifest_path.read_text())
for name, output in manifest["outputs"].items():
    print(f"{name:22s} rows={output['rows']:>6,d}  sha256={output['sha256'][:16]}")
