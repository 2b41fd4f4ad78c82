"""The model-run steps' controls: untrained ESM tables beside the trained ones, epoch-0
BiGCARP exports beside the selected (trained) ones, and which MIBiG BGCs BiGCARP trained on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crossgran.cache import ArrayCache
from crossgran.data.tables import table_path
from crossgran.models import bigcarp, esm, runs
from crossgran.profiles import Profile


@pytest.fixture()
def settings(tmp_path) -> Profile:
    """A scratch profile with a four-row corpus and tiny Pfam and A-domain tables."""
    profile = Profile(name="scratch", root=tmp_path, torch_threads=1)
    profile.processed_dir.mkdir(parents=True)
    tables = {
        "domain_corpus": pd.DataFrame(
            {
                "seq_id": ["BGC0000001", "BGC0000002", "nrps:P1", "BGC0000003"],
                "source": ["mibig", "mibig", "nrps", "mibig"],
                "ordered": [False, False, True, False],
                "split": ["train", "valid", "train", "train"],
                "n_tokens": [1, 1, 1, 1],
                "tokens": ["PF00001", "PF00002", "PF00001", "PF00003"],
            }
        ),
        "pfam_families": pd.DataFrame(
            {"pfam": ["PF00001", "PF00002"], "consensus": ["MKTAYIAKQR", "GSHMLEDPVA"]}
        ),
        "adomains": pd.DataFrame(
            {
                "domain_id": ["P1.A1"],
                "sequence": ["MKTAYIAKQRQISFVKSHFS"],
                "stachelhaus_positions": ["0 3 5"],
            }
        ),
    }
    for name, table in tables.items():
        table.to_csv(table_path(profile, name), sep="\t", index=False)
    return profile


def test_bigcarp_training_split_marks_train_sentences_only(settings) -> None:
    mask = runs.bigcarp_training_split(settings, ["BGC0000003", "BGC0000002", "BGC9", "P1"])
    # BGC0000002 is held out (valid); BGC9 has no sentence; P1 is not a MIBiG row.
    np.testing.assert_array_equal(mask, [True, False, False, False])


def test_untrained_tables_are_saved_beside_and_differ_from_the_trained(settings, tiny_esm) -> None:
    # tiny_esm is itself ESM-2 initialised under seed 0: seed 1 gives other initial weights.
    settings = replace(settings, seed=1)
    cache = ArrayCache(settings.cache_dir)
    pfam, domains = runs.embed_tables(settings, tiny_esm, cache)
    pfam0, domains0 = runs.embed_untrained_tables(settings, tiny_esm, cache)
    assert (settings.processed_dir / "esm_pfam_untrained.npz").is_file()
    assert (settings.processed_dir / "esm_adomains_untrained.npz").is_file()
    again = esm.EmbeddingResult.load(settings.processed_dir / "esm_pfam.npz")
    np.testing.assert_array_equal(again.mean[2], pfam.mean[2])  # the trained file is kept
    assert pfam0.ids == pfam.ids and domains0.ids == domains.ids
    assert pfam0.model_id != pfam.model_id
    assert not np.allclose(pfam0.mean[2], pfam.mean[2])
    assert not np.allclose(domains0.positions[2], domains.positions[2])


def test_export_writes_the_epoch0_control_of_every_run(settings, monkeypatch) -> None:
    calls = []

    def export(run_dir, corpus, adomains, n_orders, seed, *, epoch=None):
        calls.append((run_dir.name, epoch))
        matrix = {0: np.full((1, 2), -1.0 if isinstance(epoch, str) else float(epoch), np.float32)}
        return bigcarp.Representations([0], ["PF00001"], matrix, [], {0: np.zeros((0, 2))}, [], {})

    monkeypatch.setattr(bigcarp, "export_representations", export)
    monkeypatch.setattr(bigcarp.Representations, "save", lambda self, path: calls.append(path.name))
    exported = runs.export_bigcarp_runs(settings)
    assert list(exported) == [
        key for init in bigcarp.INIT_MODES for key in (init, f"{init}~untrained")
    ]
    for init in bigcarp.INIT_MODES:
        # The trained export reads the checkpoint the profile's rule selects.
        assert (f"bigcarp_{init}", settings.bigcarp.checkpoint) in calls
        assert (f"bigcarp_{init}", 0) in calls
        assert f"bigcarp_{init}.npz" in calls and f"bigcarp_{init}_epoch0.npz" in calls
        assert exported[init].family[0][0, 0] == -1.0
        assert exported[f"{init}~untrained"].family[0][0, 0] == 0.0
