"""The two models the paper compares, and what they share.

* :mod:`crossgran.models.esm`: ESM protein language models (amino-acid tokens).
* :mod:`crossgran.models.bigcarp`: BiGCARP, a ByteNet masked LM over Pfam-domain tokens.
* :mod:`crossgran.models.masking`: the BERT masking both are trained with.
* :mod:`crossgran.models.layers`: the one layer-numbering convention (0 = input
  embedding, -1 = last).

The model subpackages are not imported here: each pulls in its own heavy dependency
(fair-esm, sequence-models), and a user of one need not load the other.
"""

from crossgran.models.layers import resolve_layers
from crossgran.models.masking import IGNORE_INDEX, mask_tokens

__all__ = ["IGNORE_INDEX", "mask_tokens", "resolve_layers"]
