"""``crossgran predict``'s files: tables for scripts, JSON for programs, a figure per record.

Files in the output folder:

* ``classes.tsv``: record, class, and one probability column per feature set (``esm``,
  ``bigcarp``, ``fused``);
* ``adomains.tsv``: record, protein, A-domain start/end (0-based, end exclusive, in the
  protein) and one probability column per substrate property;
* ``domains.tsv``: every Pfam domain in gene order, with whether BiGCARP knows its token;
* ``predictions.json``: all of it per record, plus how the record was read (notes, warnings)
  and the probes' held-out calibration;
* ``<record>.png``: the record's genes with their domains, beside its class probabilities.

Every file is written into a staging folder first and moved into place only when all of them
exist, so an interrupted call leaves the previous outputs, never a mix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from crossgran import plots
from crossgran.predict.artifact import CLASS_FEATURES, Predictor
from crossgran.predict.pipeline import RecordPrediction

__all__ = [
    "FEATURE_LABELS",
    "calibration_note",
    "prediction_json",
    "record_summary",
    "write_predictions",
]

FEATURE_LABELS = {
    "esm": "ESM (amino-acid level)",
    "bigcarp": "BiGCARP (domain level)",
    "fused": "fused (ESM + BiGCARP)",
}


def calibration_note(predictor: Predictor) -> str:
    """One paragraph on how far the probabilities can be trusted, from held-out MIBiG rows."""
    fused = predictor.calibration["fused"]
    parts = ", ".join(
        f"{name} {values['brier']:.3f}" for name, values in predictor.calibration.items()
    )
    return (
        f"Held-out calibration on {predictor.training['bgcs']} MIBiG BGCs (5-fold out-of-fold "
        f"predictions of the same probes): Brier score {parts}; predicting each class's base "
        f"rate scores {fused['brier_base_rate']:.3f} (lower is better). The probes weight "
        "classes by their inverse frequency, which raises the probabilities of rare classes: "
        "read a probability as a ranking score and check the reliability table "
        "(predictions.json) before reading it as a frequency."
    )


def record_summary(prediction: RecordPrediction) -> str:
    """One line per record in counts and labels only (no probability: those vary with the
    trained models), e.g. what notebook 06 checks."""
    record = prediction.record
    outside = int((~prediction.domains["in_vocabulary"]).sum())
    return (
        f"{record.name}: {len(record.proteins)} proteins ({record.gene_source}), "
        f"{len(prediction.domains)} Pfam domains ({outside} outside BiGCARP's vocabulary), "
        f"{len(prediction.adomains)} A-domains; top class (fused): {prediction.top_class}"
    )


def _record_json(prediction: RecordPrediction) -> dict:
    record = prediction.record
    architecture = [
        {"protein": protein, "domains": [f"{r.pfam_name} ({r.pfam})" for r in group.itertuples()]}
        for protein, group in prediction.domains.groupby("protein", sort=False)
    ]
    return {
        "record": record.name,
        "source": record.source,
        "genes_from": record.gene_source,
        "notes": record.notes,
        "warnings": prediction.warnings,
        "proteins": len(record.proteins),
        "domains": len(prediction.domains),
        "out_of_vocabulary_share": round(prediction.out_of_vocabulary, 4),
        "top_class": prediction.top_class,
        "classes": {
            name: dict(
                zip(prediction.classes["class"], prediction.classes[name].round(4), strict=True)
            )
            for name in CLASS_FEATURES
        },
        "adomains": json.loads(prediction.adomains.round(4).to_json(orient="records")),
        "architecture": architecture,
    }


def prediction_json(predictions: Sequence[RecordPrediction], predictor: Predictor) -> dict:
    """Everything ``predictions.json`` holds."""
    return {
        "profile": predictor.recipe.profile,
        "calibration_note": calibration_note(predictor),
        "predictor": predictor.summary(),
        "records": [_record_json(p) for p in predictions],
    }


def _stacked(predictions: Sequence[RecordPrediction], attribute: str) -> pd.DataFrame:
    return pd.concat(
        [getattr(p, attribute).assign(record=p.record.name) for p in predictions],
        ignore_index=True,
    ).pipe(lambda table: table[["record", *table.columns.drop("record")]])


def _file_name(record: str) -> str:
    """A record name as a file name (GenBank names can hold '/' or spaces)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", record)


def write_predictions(
    predictions: Sequence[RecordPrediction],
    predictor: Predictor,
    out_dir: Path,
    *,
    figures: bool = True,
) -> list[Path]:
    """Write the files of the module docstring into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".predict-", dir=out_dir))
    try:
        tables = {"classes": "classes", "adomains": "adomains", "domains": "domains"}
        for name, attribute in tables.items():
            _stacked(predictions, attribute).to_csv(
                staging / f"{name}.tsv", sep="\t", index=False, float_format="%.4f"
            )
        document = prediction_json(predictions, predictor)
        (staging / "predictions.json").write_text(json.dumps(document, indent=2) + "\n")
        if figures:
            for prediction in predictions:
                figure = plots.record_prediction(
                    prediction.record.name,
                    prediction.record.genes,
                    prediction.domains,
                    prediction.classes,
                    FEATURE_LABELS,
                )
                plots.save(figure, staging, _file_name(prediction.record.name))
                plt.close(figure)
        written = []
        for path in sorted(staging.iterdir()):
            os.replace(path, out_dir / path.name)
            written.append(out_dir / path.name)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
