"""BiGCARP's input: Pfam annotation of proteins (cached) and the domain-token corpus.

Why cached annotation: hmmsearch of thousands of proteins against every Pfam HMM is the
slowest step of a build, and its result depends only on the sequences and the HMM file, so
it is stored under a key of both (and of the code version) and reused by every rerun.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from crossgran.cache import atomic_path, cache_key
from crossgran.data import hmm
from crossgran.data.report import BuildReport
from crossgran.data.split import split_of
from crossgran.profiles import Profile

__all__ = ["annotate", "bag_sentences", "build_domain_corpus", "token_lists"]

_COLUMNS = ["seq_id", "source", "ordered", "split", "n_tokens", "tokens"]


def annotate(proteins: dict[str, str], hmms: list, hmm_sha: str, profile: Profile) -> pd.DataFrame:
    """Overlap-resolved Pfam hits for ``proteins``, cached by (sequences, HMM file, code).

    ``hmm_sha`` names the HMMs by content: the GECCO wheel's sha256 offline, Pfam-A.hmm.gz's
    under ``full``.
    """
    fasta = "".join(f">{k}\n{v}\n" for k, v in proteins.items())
    digest = hashlib.sha256(fasta.encode()).hexdigest()
    path = profile.cache_dir / "hmmsearch" / f"{cache_key('hmmsearch', digest, hmm_sha)}.tsv"
    if path.exists():
        return pd.read_csv(path, sep="\t", dtype={"seq_id": str})
    resolved = hmm.resolve_overlaps(hmm.search_domains(hmms, proteins, cpus=profile.hmmer_cpus))
    with atomic_path(path) as tmp:
        resolved.to_csv(tmp, sep="\t", index=False)
    return resolved


def token_lists(hits: pd.DataFrame, seq_ids: list[str]) -> dict[str, list[str]]:
    """Pfam tokens of each protein in positional order (proteins with no hit map to [])."""
    grouped = hits.sort_values(["seq_id", "start"]).groupby("seq_id")["pfam"].apply(list)
    return {seq_id: grouped.get(seq_id, []) for seq_id in seq_ids}


def bag_sentences(counts: pd.DataFrame) -> dict[str, list[str]]:
    """Each BGC's Pfam bag from ``mibig_domain_counts``: count times each accession, sorted.

    The offline MIBiG "sentences": GECCO stores counts only, so their order means nothing.
    """
    return {
        bgc_id: [p for p, c in zip(group["pfam"], group["count"], strict=True) for _ in range(c)]
        for bgc_id, group in counts.groupby("bgc_id", sort=True)
    }


def build_domain_corpus(
    nrps_tokens: dict[str, list[str]],
    proteome_tokens: dict[str, list[str]],
    mibig_sentences: dict[str, list[str]],
    mibig_ordered: bool,
    profile: Profile,
    report: BuildReport,
) -> pd.DataFrame:
    """BiGCARP's training sequences.

    * ``nrps``: one row per NRPS protein, its domains in order;
    * ``proteome``: the gene-ordered proteome cut into non-overlapping windows of
      ``profile.proteome_window`` genes, each window's domains concatenated in gene order;
    * ``mibig``: one row per BGC of ``mibig_sentences``, flagged ``mibig_ordered``: offline
      these are bags (:func:`bag_sentences`, ``ordered=False``; trainers must shuffle them,
      never read the order), under ``full`` gene-ordered sentences (``ordered=True``).
    Sequences without any token are dropped (counted). Single-token proteins stay: a stand-alone
    A-domain protein is one, and the A-domain probe needs its (context-free) token.
    """
    rows = [("nrps:" + seq_id, "nrps", tokens, True) for seq_id, tokens in nrps_tokens.items()]
    genes = list(proteome_tokens)
    for first in range(0, len(genes), profile.proteome_window):
        window = genes[first : first + profile.proteome_window]
        tokens = [token for gene in window for token in proteome_tokens[gene]]
        seq_id = f"proteome:{first:05d}-{first + len(window) - 1:05d}"
        rows.append((seq_id, "proteome", tokens, True))
    rows += [(bgc_id, "mibig", tokens, mibig_ordered) for bgc_id, tokens in mibig_sentences.items()]
    corpus = pd.DataFrame(rows, columns=["seq_id", "source", "token_list", "ordered"])
    short = corpus["token_list"].str.len() == 0
    report.add("corpus_dropped_empty", int(short.sum()), "sequences without any domain hit dropped")
    corpus = corpus[~short].reset_index(drop=True)
    corpus["tokens"] = corpus["token_list"].str.join(" ")
    corpus["n_tokens"] = corpus["token_list"].str.len()
    corpus["split"] = corpus["seq_id"].map(lambda seq_id: split_of(seq_id, profile.valid_fraction))
    corpus = corpus.drop(columns="token_list")[_COLUMNS]
    for source, group in corpus.groupby("source"):
        report.add(f"corpus_{source}_sequences", len(group))
        report.add(f"corpus_{source}_tokens", int(group["n_tokens"].sum()))
    report.add("corpus_vocabulary", len({t for row in corpus["tokens"] for t in row.split()}))
    report.add("corpus_valid_sequences", int((corpus["split"] == "valid").sum()))
    return corpus
