"""crossgran.analysis.failed_init (notebook 03, claim 1) on the real smoke MIBiG labels.

The runs' per-BGC representations are stand-ins (notebook 02's trained runs take minutes):
the embedder and last layer of every run are a few random columns, except ESM-init's last
layer, which is planted to carry the labels, so the paired test against random-init must find
exactly that gain, and nothing else.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.analysis import failed_init
from crossgran.data.tables import load_table
from crossgran.models.bigcarp import Representations


@pytest.fixture(scope="module")
def settings(smoke_profile, smoke_build):
    return replace(smoke_profile, probe_jobs=1)


@pytest.fixture(scope="module")
def exports(settings) -> dict[str, Representations]:
    classes = load_table(settings, "mibig_classes").set_index("bgc_id")
    bgc_ids = list(classes.index)
    rng = np.random.default_rng(0)
    labels = classes[["Polyketide", "NRP"]].to_numpy(dtype=float)

    def run(planted: bool) -> Representations:
        bgc = {layer: rng.normal(size=(len(bgc_ids), 4)) for layer in (0, 1, 2)}
        if planted:
            bgc[2][:, :2] += 3.0 * labels
        bgc[0][0] = np.nan  # a BGC without tokens: left out of every feature set
        return Representations(
            layers=[0, 1, 2],
            families=[],
            family={},
            bgc_ids=bgc_ids,
            bgc=bgc,
            adomain_ids=[],
            adomain={},
        )

    return {"random": run(False), "esm": run(True), "esm-frozen": run(False)}


@pytest.fixture(scope="module")
def probed(settings, exports):
    return failed_init.product_class_probes(settings, exports)


def test_every_run_and_layer_is_probed_on_the_same_labelled_rows(settings, exports, probed) -> None:
    results, class_names = probed
    assert list(results) == [
        f"{init}/{layer}" for init in exports for layer in ("embedder", "last")
    ]
    truth = results["random/last"].y_true
    assert all(np.array_equal(result.y_true, truth) for result in results.values())
    classes = load_table(settings, "mibig_classes").set_index("bgc_id")
    labelled = classes.iloc[1:][classes["labelled"].iloc[1:].astype(bool)]  # row 0: no tokens
    assert truth.shape == (len(labelled), len(class_names))
    assert np.array_equal(truth, labelled[class_names].to_numpy(dtype=np.int64))


def test_probe_table_tests_each_init_against_random_on_the_same_layer(settings, probed) -> None:
    results, _ = probed
    table = failed_init.probe_table(settings, results)
    assert list(table.columns[:10]) == [
        "feature_set",
        "task",
        "model",
        "metric",
        "mean",
        "std",
        "ci_low",
        "ci_high",
        "n_rows",
        "n_seeds",
    ]
    assert list(table.columns[10:]) == [
        "init",
        "layer",
        "delta_vs_random",
        "delta_low",
        "delta_high",
        "p_value",
    ]
    assert table.loc[table["init"] == "random", "delta_vs_random"].isna().all()
    means = table.set_index(["feature_set", "metric"])["mean"]
    row = table.set_index(["feature_set", "metric"]).loc[("esm/last", "auc")]
    assert row["delta_vs_random"] == pytest.approx(
        means["esm/last", "auc"] - means["random/last", "auc"], abs=1e-12
    )
    tests, gains = failed_init.esm_gains(table)
    assert set(tests["metric"]) == {"f1", "auc"} and (tests["init"] == "esm").all()
    # The planted gain is found, on the last layer only: "claim 1" would be refuted here.
    assert not gains.empty and set(gains["layer"]) == {"last"}
    assert isinstance(gains, pd.DataFrame)
