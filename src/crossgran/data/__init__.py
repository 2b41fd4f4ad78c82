"""The data layer: pinned and downloaded inputs, their readers, and the analysis tables.

Modules, from the inputs to the tables: :mod:`~crossgran.data.sources` (pinned PyPI wheels
and pyhmmer files), :mod:`~crossgran.data.remote` (downloads with a hash lock),
:mod:`~crossgran.data.readers` (FASTA/TSV), :mod:`~crossgran.data.hmm` (Pfam annotation),
:mod:`~crossgran.data.pfam`, :mod:`~crossgran.data.mibig`, :mod:`~crossgran.data.nplinker`,
:mod:`~crossgran.data.mibig_release`, :mod:`~crossgran.data.mibig_domains`,
:mod:`~crossgran.data.adomains`, :mod:`~crossgran.data.corpus`,
:mod:`~crossgran.data.compounds` (one builder per table family),
:mod:`~crossgran.data.split` (the one hash split), :mod:`~crossgran.data.tables`
(:func:`build_all`, :func:`load_table`) and :mod:`~crossgran.data.manifest`.
Nothing here imports the models or the analysis; :mod:`crossgran.profiles` (plain settings)
is the only other crossgran module it needs besides :mod:`crossgran.cache`.

Import what you need from its module (``from crossgran.data.tables import load_table``):
the package itself loads nothing, so reading one FASTA file does not load RDKit or pyhmmer.
"""

__all__ = [
    "adomains",
    "compounds",
    "corpus",
    "hmm",
    "manifest",
    "mibig",
    "mibig_release",
    "nplinker",
    "pfam",
    "readers",
    "remote",
    "report",
    "sources",
    "split",
    "tables",
]
