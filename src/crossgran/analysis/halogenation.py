"""The paper's halogenation task: does a MIBiG BGC with a tryptophan halogenase make a
halogenated compound?

Rows are the ``halogenase_domains`` table (one per PF04820 Trp_halogenase hit in a MIBiG
BGC's proteins, built by ``crossgran.data`` from the MIBiG release); the label is whether any
parsable structure of the BGC's compounds carries F, Cl, Br or I. Rows of BGCs without a
parsable structure have no label and are left out. That table is built only by profiles that
download the MIBiG release (``profile.downloads``: ``full``):
the offline data ship no compound structures, so under ``smoke``/``mini`` the task is not run.

Feature sets (the paper, Xiao et al. 2025: fused 0.761 AUC, ESM 0.661, BiGCARP domain 0.508):

* ``esm``: ESM last layer, mean over the halogenase domain's residues (amino-acid level);
* ``bigcarp_domain``: BiGCARP last layer, the halogenase's token in its BGC's gene-ordered
  sentence (domain level, in context);
* ``bigcarp_mean``: BiGCARP last layer, mean over the BGC's sentence (cluster level);
* ``esm+bigcarp_domain+bigcarp_mean``: the paper's fusion (concatenation);
* ``random``: as wide as the fusion, the chance baseline.

Several halogenases of one BGC share its label, so the BGC is the cross-validation group
(they never straddle a split). The paper probes with an MLP (512, 128): :data:`MLP_HIDDEN`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crossgran.analysis.features import random_features
from crossgran.analysis.rows import rows_of
from crossgran.cache import ArrayCache
from crossgran.data.pfam import TRP_HALOGENASE
from crossgran.data.tables import load_table, table_path
from crossgran.models import bigcarp
from crossgran.models.esm import LoadedEsm, embed
from crossgran.profiles import Profile

__all__ = [
    "FEATURE_SETS",
    "FUSED",
    "MLP_HIDDEN",
    "PARTS",
    "TABLE",
    "bgc_sentences",
    "bigcarp_features",
    "esm_features",
    "labelled_rows",
    "task_features",
]

TABLE = "halogenase_domains"
PARTS = ("esm", "bigcarp_domain", "bigcarp_mean")
FUSED = "+".join(PARTS)
FEATURE_SETS = (*PARTS, FUSED, "random")
MLP_HIDDEN = (512, 128)  # the paper's halogenation probe


def labelled_rows(profile: Profile) -> pd.DataFrame:
    """The probe's rows: ``halogenase_domains`` rows with a label, in table order.

    Raises with the fix when the table was not built (offline profiles), holds no halogenase,
    or holds no labelled row, instead of letting an empty array fail deep inside a probe.
    """
    path = table_path(profile, TABLE)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the halogenation task needs MIBiG compound structures, "
            f"which only the full profile's build reads (profile {profile.name!r}). Fix: build "
            "the full tables first (notebook 01_data or `crossgran data --profile full`)."
        )
    table = load_table(profile, TABLE)
    if table.empty:
        raise ValueError(
            f"{path} holds no {TRP_HALOGENASE} (Trp_halogenase) hit, so the halogenation task has "
            f"no rows. Fix: check that Pfam-A.hmm.gz contains {TRP_HALOGENASE} and that "
            f"max_bgcs={profile.max_bgcs} keeps the MIBiG BGCs that have one, then rebuild the "
            "tables."
        )
    rows = table[table["has_halogen"].notna()].reset_index(drop=True)
    if rows.empty:
        raise ValueError(
            f"none of the {len(table)} rows of {path} has a label: no BGC with a halogenase has a "
            "parsable compound structure (see compounds.tsv). Fix: use a MIBiG release (or a "
            "larger max_bgcs) in which halogenase BGCs record their chem_struct."
        )
    return rows


def task_features(
    profile: Profile,
    esm_model: LoadedEsm,
    bigcarp_run_dir: Path | str,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(features by :data:`FEATURE_SETS` name, 0/1 labels, bgc_id groups) for the probe.

    Rows follow :func:`labelled_rows`. ESM vectors go through ``crossgran.esm.embed``'s
    on-disk cache (``profile.cache_dir``), so a rerun costs nothing; ``bigcarp_run_dir`` is a
    run trained on this profile's ``domain_corpus`` (notebook 02: ``models_dir/bigcarp_<init>``).
    """
    rows = labelled_rows(profile)
    features = {
        "esm": esm_features(rows, esm_model, profile),
        **bigcarp_features(rows, load_table(profile, "domain_corpus"), bigcarp_run_dir, profile),
    }
    features[FUSED] = np.hstack([features[name] for name in PARTS])
    features["random"] = random_features(len(rows), features[FUSED].shape[1], profile.seed)
    labels = rows["has_halogen"].astype(bool).astype(np.int64).to_numpy()
    return features, labels, rows["bgc_id"].to_numpy(dtype=str)


def esm_features(rows: pd.DataFrame, model: LoadedEsm, profile: Profile) -> np.ndarray:
    """(n, d) ESM last-layer mean over each halogenase domain's residues."""
    result = embed(
        dict(zip(rows["domain_id"], rows["sequence"], strict=True)),
        model,
        [-1],
        cache=ArrayCache(profile.cache_dir),
        batch_tokens=profile.esm.embed_batch_tokens,
    )
    return result.mean[result.layer_index(-1)]


def bgc_sentences(
    rows: pd.DataFrame, corpus: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The ``domain_corpus`` rows of the BGCs of ``rows`` and their tokens by bgc_id, checked
    against the halogenase sites.

    Token indices only mean something in gene-ordered sentences built with the halogenase
    table, so unordered bags, missing BGCs or a site that is not a halogenase token (tables
    from different builds) are errors, never silently wrong features.
    """
    wanted = set(rows["bgc_id"])
    sentences = corpus[(corpus["source"] == "mibig") & corpus["seq_id"].isin(wanted)]
    missing = sorted(wanted - set(sentences["seq_id"]))
    fix = "Fix: rebuild the tables (notebook 01_data), then retrain and rerun notebook 02."
    if missing:
        raise ValueError(
            f"domain_corpus has no sentence for {len(missing)} halogenase BGC(s), "
            f"e.g. {missing[0]}. {fix}"
        )
    if not sentences["ordered"].astype(bool).all():
        raise ValueError(
            "domain_corpus's MIBiG sentences are unordered bags, so a halogenase's "
            f"token index means nothing in them. {fix}"
        )
    tokens = dict(zip(sentences["seq_id"], sentences["tokens"].str.split(), strict=True))
    wrong = [
        f"{bgc_id}[{index}]"
        for bgc_id, index in zip(rows["bgc_id"], rows["token_index"], strict=True)
        if index >= len(tokens[bgc_id]) or tokens[bgc_id][index] != TRP_HALOGENASE
    ]
    if wrong:
        raise ValueError(
            f"{len(wrong)} halogenase site(s) are not {TRP_HALOGENASE} tokens of "
            f"domain_corpus, e.g. {wrong[0]}: the tables come from different builds. {fix}"
        )
    return sentences, tokens


def bigcarp_features(
    rows: pd.DataFrame, corpus: pd.DataFrame, run_dir: Path | str, profile: Profile
) -> dict[str, np.ndarray]:
    """``bigcarp_domain`` and ``bigcarp_mean`` (last layer) of each row, from one trained run."""
    run = bigcarp.load_checkpoint(run_dir)
    if TRP_HALOGENASE not in run.vocab.index:
        raise ValueError(
            f"the BiGCARP run in {run_dir} has no {TRP_HALOGENASE} token. Fix: train "
            "it on this profile's domain_corpus (notebook 02)."
        )
    sentences, tokens = bgc_sentences(rows, corpus)
    sites = list(zip(rows["bgc_id"], rows["token_index"], strict=True))
    domain = bigcarp.token_representations(run.model, run.vocab, tokens, sites, [-1])
    means = bigcarp.sequence_representations(
        run.model, run.vocab, sentences, [-1], n_orders=profile.bigcarp.n_orders, seed=profile.seed
    )
    order = rows_of(list(sentences["seq_id"]), list(rows["bgc_id"]))
    return {
        "bigcarp_domain": next(iter(domain.values())),
        "bigcarp_mean": next(iter(means.values()))[order],
    }
