# ruff: noqa: F811 (the fixtures imported from test_data_full_build are parameters here)
"""The halogenation task under a downloading profile: per-hit rows, gene-ordered sentences and
ESM, built by ``crossgran.analysis.halogenation.halogenation_features`` on the loopback MIBiG
release of ``test_data_full_build`` (its fixtures: real Pfam HMMs, synthetic clusters whose
halogenase sites are known, real PARAS SMILES, a tiny BiGCARP run and its exports).

Here: the feature sets the full profile adds (ESM, the paper's fusion, their controls) and the
probe tables; ``test_data_full_build`` checks each representation at its site.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_data_full_build import (  # noqa: F401 (fixtures, found by name)
    SMALL,
    built,
    exported,
    one_thread,
    pfam,
    served,
    server,
    smiles,
    tiny_run,
)

from crossgran.analysis import halogenation
from crossgran.analysis.halogenation_probe import halogenation_tables

pytestmark = pytest.mark.usefixtures("local_only")
FUSED = halogenation.FUSED


def test_full_features_add_esm_and_the_fusion_with_their_controls(
    built, tiny_run, tiny_esm, exported
) -> None:
    profile, _ = built
    data = halogenation.halogenation_features(profile, exported, tiny_run, esm_model=tiny_esm)
    assert list(data.features) == [
        "bigcarp_domain",
        "bigcarp_mean",
        "bigcarp_domain~untrained",
        "bigcarp_mean~untrained",
        "bigcarp_domain~random",
        "bigcarp_mean~random",
        "esm",
        "esm~random",
        "esm~untrained",
        FUSED,
        f"{FUSED}~random",
        f"{FUSED}~untrained",
        "pfam_counts",
        "random",
    ]
    width, esm_width = SMALL["bigcarp"].d_model, tiny_esm.embed_dim
    for suffix in ("", "~random", "~untrained"):  # the fusion: its parts side by side
        assert data.features[f"esm{suffix}"].shape == (3, esm_width)
        parts = [data.features[part + suffix] for part in halogenation.PARTS]
        np.testing.assert_array_equal(data.features[FUSED + suffix], np.hstack(parts))
        assert data.features[FUSED + suffix].shape == (3, esm_width + 2 * width)
    assert data.features["random"].shape == (3, esm_width + 2 * width)
    assert data.groups.tolist() == ["BGC9900001", "BGC9900001", "BGC9900002"]
    assert data.labels.tolist() == [1, 1, 0] and data.n_duplicates == 0
    assert not np.allclose(data.features["esm"], data.features["esm~random"])
    # tiny_esm is ESM-2's own initialisation under seed 0, the profile's seed: the untrained
    # control rebuilds that very network (under another cache key).
    assert profile.seed == 0
    np.testing.assert_array_equal(data.features["esm"], data.features["esm~untrained"])


def test_full_tables_read_the_profiles_esm_and_need_enough_bgcs(
    built, tiny_run, tiny_esm, exported, monkeypatch
) -> None:
    profile, _ = built
    loaded = []

    def load_esm(spec, models_dir):
        loaded.append((spec, models_dir))
        return tiny_esm

    monkeypatch.setattr(halogenation, "load_esm", load_esm)
    table, tests, notes = halogenation_tables(profile, exported, tiny_run)
    assert loaded == [(profile.esm.spec, profile.models_dir)]
    assert table.empty and tests.empty
    assert notes[0].startswith("3 BGCs with a PF04820 (Trp_halogenase) domain, 1 of them")
    assert notes[1].startswith("probed: 3 halogenase domains of 2 BGCs, 2 halogenated and 1 not")
    assert notes[-1] == "not run: the rarer label is held by 1 BGCs, fewer than 2 folds"
