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
# # 06 · Your own BGC: both granularities and a fused prediction
#
# Notebooks 03–05 ask whether amino-acid-level (ESM) and domain-level (BiGCARP) representations
# are complementary. This one puts that to use on a gene cluster of your own: give it a GenBank
# file (an antiSMASH region, a MIBiG entry, or any record with CDS features or a nucleotide
# sequence) or a protein FASTA in gene order, and it
#
# 1. annotates Pfam domains with the profile's HMMs (gathering cutoffs, overlaps resolved as for
#    BiGCARP's training corpus);
# 2. embeds them at both granularities: the ESM vectors of the record's Pfam families, and
#    BiGCARP's last layer over the record's domain tokens;
# 3. predicts the MIBiG product class from each granularity alone and from both concatenated,
#    with the linear probes notebook 05 validates, trained here on every labelled MIBiG BGC;
# 4. predicts the substrate properties of every NRPS A-domain it finds (ESM over the domain
#    beside BiGCARP's A-domain token, as in notebook 05).
#
# What a prediction can and cannot say: the probes are only as good as the profile's models
# (notebook 05 and `paper_vs_reproduced.md` say which claims hold under it), and their
# probabilities come with a held-out calibration measured on MIBiG (printed below). A record
# whose domains BiGCARP never saw in training gets a warning. The same pipeline runs from a
# shell: `crossgran predict your_cluster.gbk --profile mini`.
#
# The stored run predicts **BGC0001090** (MIBiG; an NRPS cluster shipped with pyhmmer's test
# data). Note that it is also one of the MIBiG BGCs the probes were trained on, so it shows the
# pipeline, not a held-out score: the held-out figures are the calibration below.

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
inputs = []  # your GenBank / protein FASTA paths; empty: MIBiG BGC0001090 (shipped with pyhmmer)

# %%
from pathlib import Path

from crossgran import plots, predict
from crossgran.data.sources import pyhmmer_file
from crossgran.session import prepare

settings = prepare(profile, on_colab=ON_COLAB)
paths = [Path(p) for p in inputs] or [pyhmmer_file("BGC0001090.gbk")]
print(f"profile {settings.name}; predicting {', '.join(p.name for p in paths)}")

# %% [markdown]
# On Colab, upload a file first (`from google.colab import files; files.upload()`) and set
# `inputs = ["<its name>"]` in the parameters cell; on Binder, drag it into the file browser.
# The first call trains the probes from the profile's tables (seconds) and stores them beside
# its models; a later call refuses them if the models have changed since.

# %%
# NBVAL_IGNORE_OUTPUT
result = predict.predict_files(settings, paths, settings.results_dir / "predictions")
print(predict.calibration_note(result.predictor))

# %% [markdown]
# What was read, and the fused probe's top class. BGC0001090 is an NRPS cluster: the fused
# probe should call it NRP, and its adenylation domains should all be found.

# %%
# NBVAL_CHECK_OUTPUT
for prediction in result.records:
    print(predict.record_summary(prediction))

# %% [markdown]
# The class probabilities from each granularity and from both. The claim this figure lets you
# read for your own cluster: where the two granularities disagree, the fused probe is the one
# notebook 05 tested against both (and against the random concatenation).

# %%
# NBVAL_IGNORE_OUTPUT
for prediction in result.records:
    print(prediction.classes.set_index("class").round(3).to_string())

# %%
for prediction in result.records:
    plots.save(
        plots.record_prediction(
            prediction.record.name,
            prediction.record.genes,
            prediction.domains,
            prediction.classes,
            predict.FEATURE_LABELS,
        ),
        settings.figures_dir,
        f"06_{prediction.record.name}",
    )

# %% [markdown]
# Every NRPS A-domain (an AMP-binding hit through its AMP-binding_C subdomain, as PARAS cuts
# them) with the probability of each substrate property; notebook 05 gives each property's
# held-out AUC, and `predictions.json` repeats it beside the prediction.

# %%
# NBVAL_IGNORE_OUTPUT
for prediction in result.records:
    print(prediction.adomains.drop(columns=["token_index"]).round(3).to_string(index=False))
