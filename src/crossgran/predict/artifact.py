"""The probes ``crossgran predict`` serves: trained on a profile's MIBiG and PARAS tables, stored
with the feature recipe and the ids of the models whose features they read.

Why stored with ids: a probe is a linear map over one model's feature space. Retrain the local
ESM or a BiGCARP run and the same file would still load and still print probabilities, but over
features it never saw. So the artifact records which ESM (content-addressed ``model_id`` and the
sha256 of the family-vector table it was trained on) and which BiGCARP checkpoint (run, epoch
and the sha256 of its weights) it expects, and :func:`load_predictor` refuses a profile whose
current models differ, naming the command that rebuilds it.

The probes are the ones notebook 05 validates: the linear probe (standardised logistic
regression with balanced class weights, one per class) on
``esm`` (count-weighted mean of the BGC's ESM family vectors, last layer), ``bigcarp`` (random-init
BiGCARP's last layer, mean over the BGC's tokens) and ``fused`` (their concatenation), and, per
A-domain substrate property, the same probe on ``bigcarp+esm_mean``. Their calibration is
measured once here, on held-out MIBiG rows (out-of-fold predictions of the same probe), and
served with every prediction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import BaseEstimator

from crossgran.analysis.features import count_weighted_mean
from crossgran.analysis.labelled_rows import product_class_rows
from crossgran.analysis.probes import cross_validated_scores
from crossgran.analysis.probes.cv import make_estimator
from crossgran.analysis.rows import rows_of
from crossgran.cache import atomic_path, sha256_file, write_text_atomic
from crossgran.data.adomains import PROPERTIES
from crossgran.data.tables import load_table
from crossgran.models.bigcarp import Representations, selected_epoch
from crossgran.models.bigcarp.checkpoint import model_path
from crossgran.models.esm import EmbeddingResult
from crossgran.models.runs import bigcarp_run_dir
from crossgran.profiles import Profile
from crossgran.threads import limit

__all__ = [
    "CLASS_FEATURES",
    "PREDICTOR_FORMAT",
    "Predictor",
    "PredictorMismatch",
    "Recipe",
    "current_recipe",
    "ensure_predictor",
    "load_predictor",
    "predictor_path",
    "save_predictor",
    "train_predictor",
]

PREDICTOR_FORMAT = 1
BIGCARP_INIT = "random"  # notebook 05's product-class and A-domain probes read random-init
CLASS_FEATURES = ("esm", "bigcarp", "fused")
RELIABILITY_BINS = 10
BUILD_COMMAND = "crossgran train-predictor --profile {profile}"
MODELS_COMMAND = "crossgran run --profile {profile} 01 02"


class PredictorMismatch(ValueError):
    """The stored probes expect other models than the profile now holds."""


@dataclass(frozen=True)
class Recipe:
    """How every feature the probes read is made, and from which models. Two recipes equal in
    every field make the same features from the same inputs."""

    profile: str
    esm_model_id: str  # content-addressed (name + short sha256 of the weights)
    esm_layer: int
    esm_family_vectors_sha256: str  # esm_pfam.npz: the family vectors the ESM feature averages
    bigcarp_run: str  # directory name under the profile's models dir
    bigcarp_epoch: int  # the checkpoint the profile's rule selects
    bigcarp_weights_sha256: str
    bigcarp_layer: int  # last ByteNet layer
    # "bag": the MIBiG rows are unordered, read in n_orders random orders; or "gene order"
    bgc_order: str
    n_orders: int
    seed: int


@dataclass
class Predictor:
    """Fitted probes, the recipe their features follow, and what was measured on held-out rows.

    ``class_models[name]`` predicts the ``classes`` (multi-label, one probability per class)
    from feature set ``name`` of :data:`CLASS_FEATURES`; ``adomain_models[prop]`` predicts one
    substrate property of an A-domain from ``bigcarp`` token + ``esm_mean``. ``calibration``:
    per feature set, held-out Brier scores and a reliability table; ``adomain_auc``: held-out
    AUC per property (folds grouped by parent protein, as in notebook 05); ``training``: row
    counts.
    """

    format: int
    recipe: Recipe
    classes: list[str]
    class_models: dict[str, BaseEstimator]
    adomain_models: dict[str, BaseEstimator]
    calibration: dict[str, dict]
    adomain_auc: dict[str, float]
    training: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        """Everything but the fitted models, as JSON-ready values."""
        return {
            "format": self.format,
            "recipe": asdict(self.recipe),
            "classes": self.classes,
            "calibration": self.calibration,
            "adomain_auc": self.adomain_auc,
            "training": self.training,
        }


def predictor_path(settings: Profile) -> Path:
    """Where a profile's probes live: beside the models whose features they read."""
    return settings.models_dir / "predictor" / "predictor.joblib"


def _models_missing(settings: Profile, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} of profile {settings.name!r} is not built yet; build the profile's models "
        f"first: {MODELS_COMMAND.format(profile=settings.name)}"
    )


def _esm_family_file(settings: Profile) -> Path:
    path = settings.processed_dir / "esm_pfam.npz"
    if not path.is_file():
        raise _models_missing(settings, f"the ESM family-vector table {path}")
    return path


def current_recipe(settings: Profile) -> Recipe:
    """The recipe the profile's models give today; compared with a stored one on load."""
    family_file = _esm_family_file(settings)
    family = EmbeddingResult.load(family_file)
    run_dir = bigcarp_run_dir(settings, BIGCARP_INIT)
    if not (run_dir / "run.json").is_file():
        raise _models_missing(settings, f"the BiGCARP run {run_dir}")
    epoch = selected_epoch(run_dir, settings.bigcarp.checkpoint)
    corpus = load_table(settings, "domain_corpus")
    ordered = corpus.loc[corpus["source"] == "mibig", "ordered"].astype(bool)
    return Recipe(
        profile=settings.name,
        esm_model_id=family.model_id,
        esm_layer=max(family.layers),
        esm_family_vectors_sha256=sha256_file(family_file),
        bigcarp_run=run_dir.name,
        bigcarp_epoch=int(epoch),
        bigcarp_weights_sha256=sha256_file(model_path(run_dir, epoch)),
        bigcarp_layer=settings.bigcarp.n_layers,
        bgc_order="gene order" if ordered.all() else "bag",
        n_orders=settings.bigcarp.n_orders,
        seed=settings.seed,
    )


def _calibration(targets: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict:
    """Held-out Brier score per class and overall, the Brier score of predicting each class's
    base rate (what a probe must beat to be informative), and a reliability table pooled over
    classes (predicted probability in equal-width bins against the observed frequency)."""
    base_rate = targets.mean(axis=0, keepdims=True)
    brier = ((scores - targets) ** 2).mean(axis=0)
    bins = np.minimum((scores * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1).ravel()
    observed, predicted = targets.ravel(), scores.ravel()
    reliability = [
        {
            "bin": f"{b / RELIABILITY_BINS:.1f}-{(b + 1) / RELIABILITY_BINS:.1f}",
            "n": int((bins == b).sum()),
            "mean_predicted": float(predicted[bins == b].mean()),
            "observed_frequency": float(observed[bins == b].mean()),
        }
        for b in range(RELIABILITY_BINS)
        if (bins == b).any()
    ]
    return {
        "brier": float(brier.mean()),
        "brier_base_rate": float(((base_rate - targets) ** 2).mean()),
        "brier_per_class": dict(zip(classes, brier.round(4).tolist(), strict=True)),
        "reliability": reliability,
    }


def _fit(features: np.ndarray, labels: np.ndarray, task: str, seed: int) -> BaseEstimator:
    with limit(blas_threads=1):
        return make_estimator("logreg", task, seed, ()).fit(features, labels)


def _class_features(
    settings: Profile, family: EmbeddingResult, export: Representations, recipe: Recipe
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    counts = load_table(settings, "mibig_domain_counts")
    bgc_ids = np.asarray(export.bgc_ids)
    esm = count_weighted_mean(counts, bgc_ids, family.ids, family.mean[recipe.esm_layer])
    bigcarp = export.bgc[recipe.bigcarp_layer]
    return bgc_ids, {"esm": esm, "bigcarp": bigcarp, "fused": np.hstack([esm, bigcarp])}


def _adomain_probes(
    settings: Profile, export: Representations, recipe: Recipe
) -> tuple[dict[str, BaseEstimator], dict[str, float], int]:
    """Per property, the fused A-domain probe fitted on every labelled A-domain, its held-out
    AUC (folds grouped by parent protein), and the number of A-domains with features."""
    adomains = EmbeddingResult.load(settings.processed_dir / "esm_adomains.npz")
    table = load_table(settings, "adomains").set_index("domain_id").loc[export.adomain_ids]
    esm_mean = adomains.mean[recipe.esm_layer][rows_of(adomains.ids, export.adomain_ids)]
    features = np.hstack([export.adomain[recipe.bigcarp_layer], esm_mean])
    models, auc = {}, {}
    for prop in PROPERTIES:
        defined = table[prop].notna().to_numpy()
        labels = table.loc[defined, prop].astype(int).to_numpy()
        held_out = cross_validated_scores(
            features[defined],
            labels,
            task="binary",
            groups=table.loc[defined, "parent_protein"].to_numpy(),
            folds=settings.probe_folds,
            seeds=(settings.seed,),
            n_jobs=settings.probe_jobs,
        )
        auc[prop] = round(held_out.mean()["auc"], 4)
        models[prop] = _fit(features[defined], labels, "binary", settings.seed)
    return models, auc, len(table)


def train_predictor(settings: Profile) -> Predictor:
    """Fit the served probes on every labelled row of the profile and measure them held out.

    Rows and labels are notebook 05's (:func:`~crossgran.analysis.labelled_rows.product_class_rows`:
    labelled BGCs, one per distinct domain bag); calibration comes from out-of-fold predictions of
    one CV seed, the fitted models from all rows.
    """
    recipe = current_recipe(settings)
    family = EmbeddingResult.load(_esm_family_file(settings))
    export_file = settings.processed_dir / f"bigcarp_{BIGCARP_INIT}.npz"
    if not export_file.is_file():
        raise _models_missing(settings, f"the BiGCARP export {export_file}")
    export = Representations.load(export_file)
    if export.epoch is not None and export.epoch != recipe.bigcarp_epoch:
        raise PredictorMismatch(
            f"{export_file} holds epoch {export.epoch} but the run's selected checkpoint is "
            f"epoch {recipe.bigcarp_epoch}; re-export the runs (notebook 02)"
        )
    bgc_ids, blocks = _class_features(settings, family, export, recipe)
    rows = product_class_rows(settings, bgc_ids, blocks.values())
    class_models, calibration = {}, {}
    for name in CLASS_FEATURES:
        features = blocks[name][rows.rows]
        held_out = cross_validated_scores(
            features,
            rows.targets,
            task="multilabel",
            folds=settings.probe_folds,
            seeds=(settings.seed,),
            n_jobs=settings.probe_jobs,
        )
        calibration[name] = _calibration(rows.targets, held_out.oof_scores[0], rows.class_names)
        calibration[name]["macro_f1"] = round(held_out.mean()["f1"], 4)
        class_models[name] = _fit(features, rows.targets, "multilabel", settings.seed)
    adomain_models, adomain_auc, n_adomains = _adomain_probes(settings, export, recipe)
    return Predictor(
        PREDICTOR_FORMAT,
        recipe,
        list(rows.class_names),
        class_models,
        adomain_models,
        calibration,
        adomain_auc,
        {"bgcs": len(rows.rows), "adomains": n_adomains},
    )


def save_predictor(predictor: Predictor, path: Path) -> None:
    """The fitted probes (``.joblib``) and, beside them, a readable ``predictor.json`` of the
    recipe and the held-out measurements; each file written whole or not at all."""
    with atomic_path(path) as tmp:
        joblib.dump(predictor, tmp)
    write_text_atomic(path.with_suffix(".json"), json.dumps(predictor.summary(), indent=2) + "\n")


def load_predictor(settings: Profile) -> Predictor:
    """The profile's stored probes, refused unless their recipe is what the profile's models
    give today (:func:`current_recipe`). Only load an artifact this project wrote: joblib files
    are pickles."""
    path = predictor_path(settings)
    build = BUILD_COMMAND.format(profile=settings.name)
    if not path.is_file():
        raise FileNotFoundError(f"no predictor at {path}; build it: {build}")
    predictor = joblib.load(path)
    if not isinstance(predictor, Predictor) or predictor.format != PREDICTOR_FORMAT:
        raise PredictorMismatch(
            f"{path} is not a format-{PREDICTOR_FORMAT} crossgran predictor; rebuild it: {build}"
        )
    expected = asdict(current_recipe(settings))
    stored = asdict(predictor.recipe)
    changed = [
        f"{key}: stored {stored.get(key)!r}, now {value!r}"
        for key, value in expected.items()
        if stored.get(key) != value
    ]
    if changed:
        raise PredictorMismatch(
            f"{path} was trained on other models than profile {settings.name!r} holds now "
            f"({'; '.join(changed)}); its probabilities would be read off the wrong feature "
            f"space. Rebuild it: {build}"
        )
    return predictor


def ensure_predictor(settings: Profile) -> tuple[Predictor, bool]:
    """(the profile's probes, whether they were built now). Missing probes are trained and
    saved (seconds, from the tables notebook 02 wrote); stored ones that no longer match the
    profile's models are an error, never silently replaced."""
    if predictor_path(settings).is_file():
        return load_predictor(settings), False
    predictor = train_predictor(settings)
    save_predictor(predictor, predictor_path(settings))
    return predictor, True
