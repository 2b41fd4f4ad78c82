"""GECCO's MIBiG compositions: per-BGC domain frequencies turned back into integer counts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crossgran.data.mibig import frequencies_to_counts


def test_frequencies_become_integer_counts() -> None:
    counts = frequencies_to_counts(pd.Series([0.0125, 0.025, 0.075, 0.8875], dtype=np.float32))
    assert list(counts) == [1, 2, 6, 71]
