"""crossgran: ESM (amino acids) and BiGCARP (Pfam domains) representations, compared and fused."""

__version__ = "0.1.0"
