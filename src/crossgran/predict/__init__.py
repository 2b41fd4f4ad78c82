"""``crossgran predict``: a user's own BGC in, both granularities and a fused prediction out.

The paper's practical message is that amino-acid-level (ESM) and domain-level (BiGCARP)
representations are complementary; this package serves that to a researcher holding a new gene
cluster. Modules: :mod:`.artifact` (the probes, trained on the profile's MIBiG and PARAS tables
and stored with the recipe and model ids they expect), :mod:`.pipeline` (records to
predictions), :mod:`.output` (TSV, JSON and a figure per record). Input records are read by
:mod:`crossgran.data.genbank`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crossgran.data.genbank import InputRecord, RecordError, read_inputs
from crossgran.predict.artifact import (
    CLASS_FEATURES,
    Predictor,
    PredictorMismatch,
    Recipe,
    current_recipe,
    ensure_predictor,
    load_predictor,
    predictor_path,
    save_predictor,
    train_predictor,
)
from crossgran.predict.output import (
    FEATURE_LABELS,
    calibration_note,
    prediction_json,
    record_summary,
    write_predictions,
)
from crossgran.predict.pipeline import RecordPrediction, adomain_spans, predict_records
from crossgran.profiles import Profile

__all__ = [
    "CLASS_FEATURES",
    "FEATURE_LABELS",
    "InputRecord",
    "Prediction",
    "Predictor",
    "PredictorMismatch",
    "Recipe",
    "RecordError",
    "RecordPrediction",
    "adomain_spans",
    "calibration_note",
    "current_recipe",
    "ensure_predictor",
    "load_predictor",
    "predict_files",
    "predict_records",
    "prediction_json",
    "predictor_path",
    "read_inputs",
    "record_summary",
    "save_predictor",
    "train_predictor",
    "write_predictions",
]


@dataclass
class Prediction:
    """One ``predict_files`` call: the predictions, the probes used, the files written, and
    whether the probes were built by this call."""

    records: list[RecordPrediction]
    predictor: Predictor
    files: list[Path]
    built_predictor: bool


def predict_files(
    settings: Profile,
    paths: Sequence[Path | str],
    out_dir: Path | str,
    *,
    figures: bool = True,
    progress: bool = False,
) -> Prediction:
    """Read ``paths`` (GenBank or protein FASTA, several records each), predict every record
    and write the outputs to ``out_dir``. Inputs are checked before any model is loaded, and
    nothing is written unless every record could be predicted."""
    records = read_inputs(paths)
    predictor, built = ensure_predictor(settings)
    predictions = predict_records(settings, records, predictor, progress=progress)
    files = write_predictions(predictions, predictor, Path(out_dir), figures=figures)
    return Prediction(predictions, predictor, files, built)
