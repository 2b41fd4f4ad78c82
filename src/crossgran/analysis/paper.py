"""The paper's anchor figures as data: the one place its numbers (and our significance level) live.

Source: Xiao H., Breitling R., Takano E., Álvarez M. A. *Cross-Granularity Representations
for Biological Sequences: Insights from ESM and BiGCARP.* IEEE BIBM 2025, pp. 6936–6943,
doi:10.1109/BIBM66473.2025.11356265, arXiv:2603.20825. The values below are copied from the
paper's results (MIBiG 3 product-class table, A-domain substrate-property and halogenation
AUCs, linear CKA between BiGCARP layers); nothing here reads the paper at run time.

Why a direction and not a tolerance: the offline profiles run a small local ESM-2 and a mini
BiGCARP with linear probes on pooled vectors (the paper: ESM-1b, a 32-layer BiGCARP, BiLSTM
and MLP probes), so absolute numbers are not expected to match. What a reproduction can test
is each figure's *claim*: fused above the best single representation, ESM initialisation not
better than random, the token table close to its initialisation, and so on. Every anchor
states that claim as a comparison with other anchors (or with chance) and the report
(``crossgran.analysis.report``) says whether our numbers make the same comparison come out
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ANCHORS", "CHANCE_AUC", "PAPER_CKA", "SIGNIFICANCE", "Anchor", "Expectation"]

Expectation = Literal["above", "below", "chance", "not_better"]
CHANCE_AUC = 0.5
# One-sided significance level of every paired bootstrap test in the notebooks and the report.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Anchor:
    """One figure of the paper, where our counterpart lives, and the claim it supports.

    ``source`` is a results CSV stem written by a notebook and ``select`` the column values
    that pick our row from it; ``value`` names the column holding the number. ``expect``:
    ``above``/``below`` the largest of the ``refs`` anchors' values (chance AUC 0.5 when
    there are no refs), ``chance`` (our 95% CI contains 0.5), or ``not_better`` (the row's
    paired bootstrap against random initialisation has p >= 0.05, i.e. no significant gain).
    """

    key: str
    task: str
    what: str
    metric: str
    paper: float
    source: str
    select: dict[str, str] = field(default_factory=dict)
    expect: Expectation = "above"
    refs: tuple[str, ...] = ()
    value: str = "mean"


def _product_class(
    key: str,
    what: str,
    f1: float,
    auc: float,
    source: str,
    select: dict[str, str],
    expect: Expectation,
    refs: tuple[str, ...],
) -> list[Anchor]:
    """The product-class table reports macro-F1 and macro-AUC per representation."""
    return [
        Anchor(
            f"{key}_{metric}",
            "MIBiG product class",
            what,
            label,
            paper,
            source,
            {**select, "metric": metric},
            expect,
            tuple(f"{ref}_{metric}" for ref in refs),
        )
        for metric, label, paper in (("f1", "macro-F1", f1), ("auc", "macro-AUC", auc))
    ]


def _adomain(
    prop: str,
    feature_set: str,
    what: str,
    auc: float,
    expect: Expectation,
    refs: tuple[str, ...] = (),
) -> Anchor:
    return Anchor(
        f"{prop}_{feature_set}",
        f"A-domain {prop}",
        what,
        "AUC",
        auc,
        "adomain_probe",
        {"property": prop, "feature_set": feature_set, "metric": "auc"},
        expect,
        tuple(f"{prop}_{ref}" for ref in refs),
    )


def _cka(
    key: str,
    what: str,
    paper: float,
    select: dict[str, str],
    expect: Expectation,
    refs: tuple[str, ...],
) -> Anchor:
    return Anchor(
        key,
        "CKA (linear)",
        what,
        "linear CKA",
        paper,
        "cka_summary",
        select,
        expect,
        refs,
        value="linear_cka",
    )


_SINGLES = ("pc_esm", "pc_random_embedder", "pc_random_last")
_NOT_BETTER = ("pc_esm_embedder", "pc_esm_last")

ANCHORS: tuple[Anchor, ...] = (
    *_product_class(
        "pc_fused",
        "ESM + BiGCARP (last layer) concatenated",
        0.721,
        0.911,
        "product_class_probe",
        {"feature_set": "esm+bigcarp_last"},
        "above",
        _SINGLES,
    ),
    *_product_class(
        "pc_random_embedder",
        "random-init BiGCARP embedder",
        0.719,
        0.908,
        "product_class_probe",
        {"feature_set": "bigcarp_embedder"},
        "above",
        ("pc_random",),
    ),
    *_product_class(
        "pc_esm_last",
        "ESM-init BiGCARP last layer",
        0.717,
        0.901,
        "failed_init_probe",
        {"init": "esm", "layer": "last"},
        "not_better",
        (),
    ),
    *_product_class(
        "pc_random_last",
        "random-init BiGCARP last layer",
        0.707,
        0.902,
        "product_class_probe",
        {"feature_set": "bigcarp_last"},
        "above",
        ("pc_random",),
    ),
    *_product_class(
        "pc_esm_embedder",
        "ESM-init BiGCARP embedder",
        0.704,
        0.888,
        "failed_init_probe",
        {"init": "esm", "layer": "embedder"},
        "not_better",
        (),
    ),
    *_product_class(
        "pc_esm",
        "ESM (count-weighted family vectors)",
        0.700,
        0.900,
        "product_class_probe",
        {"feature_set": "esm"},
        "above",
        ("pc_random",),
    ),
    *_product_class(
        "pc_pfam2vec",
        "Pfam2vec + random forest (ours: Pfam domain counts)",
        0.630,
        0.908,
        "product_class_probe",
        {"feature_set": "pfam_counts"},
        "above",
        ("pc_random",),
    ),
    Anchor(
        "pc_random_f1",
        "MIBiG product class",
        "random vectors",
        "macro-F1",
        0.162,
        "product_class_probe",
        {"feature_set": "random", "metric": "f1"},
        "below",
        ("pc_esm_f1",),
    ),
    Anchor(
        "pc_random_auc",
        "MIBiG product class",
        "random vectors",
        "macro-AUC",
        0.505,
        "product_class_probe",
        {"feature_set": "random", "metric": "auc"},
        "chance",
    ),
    _adomain("is_aromatic", "stachel", "ESM, Stachelhaus positions", 0.958, "above", ("esm_mean",)),
    _adomain(
        "is_aromatic",
        "bigcarp+stachel",
        "BiGCARP + Stachelhaus-position ESM",
        0.959,
        "above",
        ("stachel", "bigcarp"),
    ),
    _adomain("is_aromatic", "esm_mean", "ESM mean over the domain", 0.912, "above", ("bigcarp",)),
    _adomain(
        "is_aromatic", "bigcarp+esm_mean", "BiGCARP + ESM mean", 0.904, "below", ("esm_mean",)
    ),
    _adomain(
        "is_aromatic", "bigcarp", "BiGCARP A-domain token in context", 0.719, "above", ("random",)
    ),
    _adomain("is_aromatic", "random", "random vectors", 0.493, "chance"),
    _adomain(
        "has_heterocycle", "stachel", "ESM, Stachelhaus positions", 0.939, "above", ("esm_mean",)
    ),
    _adomain(
        "has_heterocycle", "esm_mean", "ESM mean over the domain", 0.885, "above", ("bigcarp",)
    ),
    _adomain("has_heterocycle", "bigcarp", "BiGCARP A-domain token in context", 0.649, "above"),
    Anchor(
        "halo_fused",
        "halogenation",
        "ESM + BiGCARP domain + BiGCARP mean-pool",
        "AUC",
        0.761,
        "halogenation_probe",
        {"feature_set": "esm+bigcarp_domain+bigcarp_mean", "metric": "auc"},
        "above",
        ("halo_esm", "halo_bigcarp"),
    ),
    Anchor(
        "halo_esm",
        "halogenation",
        "ESM",
        "AUC",
        0.661,
        "halogenation_probe",
        {"feature_set": "esm", "metric": "auc"},
        "above",
        ("halo_bigcarp",),
    ),
    Anchor(
        "halo_bigcarp",
        "halogenation",
        "BiGCARP domain",
        "AUC",
        0.508,
        "halogenation_probe",
        {"feature_set": "bigcarp_domain", "metric": "auc"},
        "chance",
    ),
    _cka(
        "cka_esm_table_init",
        "ESM-init token table after training vs its initialisation",
        0.954,
        {"comparison": "token_table_vs_init", "run_a": "esm", "run_b": "esm"},
        "above",
        ("cka_esm_embedder_last",),
    ),
    _cka(
        "cka_esm_embedder_last",
        "ESM-init embedder vs ESM-init last layer",
        0.285,
        {"comparison": "embedder_vs_last", "run_a": "esm", "run_b": "esm"},
        "below",
        ("cka_esm_table_init",),
    ),
    _cka(
        "cka_random_embedder_last",
        "random-init embedder vs random-init last layer",
        0.311,
        {"comparison": "embedder_vs_last", "run_a": "random", "run_b": "random"},
        "below",
        ("cka_esm_table_init",),
    ),
    _cka(
        "cka_esm_embedder_random_last",
        "ESM-init embedder vs random-init last layer",
        0.110,
        {"comparison": "embedder_vs_last", "run_a": "esm", "run_b": "random"},
        "below",
        ("cka_esm_embedder_last",),
    ),
)


# The paper's linear CKA figures by (comparison, run_a, run_b), as the notebooks' CKA tables
# name them: the same numbers as the CKA anchors above, read from them.
PAPER_CKA: dict[tuple[str, str, str], float] = {
    (a.select["comparison"], a.select["run_a"], a.select["run_b"]): a.paper
    for a in ANCHORS
    if a.source == "cka_summary"
}
