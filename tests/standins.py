"""Stand-ins for the remote files of a downloading profile, built from the offline data.

Why one module: the loopback build test (test_data_full_build.py), the official-checkpoint tests
(test_bigcarp_official.py), the ESM loader tests (test_esm.py) and the end-to-end rehearsal
(test_rehearsal.py) serve the same kinds of file, and each kind has one builder here:

* ``Pfam-A.hmm.gz`` and ``Pfam-A.clans.tsv.gz`` (:func:`write_pfam_release`): real Pfam 35.0
  HMMs from GECCO's pinned subset (:func:`gecco_hmms`), written with pyhmmer;
* MIBiG 3.1-shaped JSON and GenBank tarballs (:func:`write_mibig_release`): GenBank records
  whose CDS translations are Pfam consensus sequences (:func:`genbank_record`), so hmmsearch
  finds each domain where it was put;
* a fair-esm ESM-1b checkpoint (:func:`save_tiny_esm1b`) and an official BiGCARP checkpoint in
  the layout sequence_models reads (:func:`write_official_bigcarp`), both tiny and seeded;
* the rehearsal's whole release (:func:`write_rehearsal_release`): MIBiG BGCs chosen from
  GECCO's compositions and classes with NPLinker's compound structures, every file the
  ``rehearsal`` profile reads under the real file name.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqFeature import FeatureLocation, SeqFeature
from Bio.SeqRecord import SeqRecord
from loopback import json_record, tarball

from crossgran.data import hmm, remote, sources
from crossgran.data.compounds import build_offline_halogenation
from crossgran.data.mibig import PROBE_CLASSES, build_mibig
from crossgran.data.pfam import TRP_HALOGENASE, build_pfam_families
from crossgran.data.report import BuildReport
from crossgran.data.split import association_label_bgcs
from crossgran.profiles import Profile

# sequence_models' load_carp builds every *frozen* BiGCARP with exactly this many frozen rows.
N_FROZEN = 19450
NO_CLAN = ("\\N", "\\N")  # the clans file's mark for a family outside any clan
# The families every A-domain parent needs (AMP-binding, its C-terminal domain, condensation,
# PCP): the rehearsal serves them whatever BGCs it picks, so A-domains get their token index.
NRPS_FAMILIES = ("PF00501", "PF13193", "PF00668", "PF00550")
REAL_BGC = "BGC0001090"  # pyhmmer ships its real GenBank record


# ---------------------------------------------------------------- Pfam


def gecco_hmms(raw_dir: Path) -> dict[str, object]:
    """GECCO's real Pfam 35.0 HMMs (its pinned wheel), keyed by unversioned accession."""
    gecco = sources.fetch_wheel("gecco", raw_dir)
    path = sources.extract_wheel_member(gecco, "gecco/hmmer/Pfam.h3m", raw_dir / "extracted")
    return {hmm.pfam_accession(hmm.text(m.accession)): m for m in hmm.read_hmms(path)}


def write_pfam_release(
    folder: Path,
    models: Mapping[str, object],
    clans: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """``Pfam-A.hmm.gz`` holding ``models`` and ``Pfam-A.clans.tsv.gz`` with one row per family
    in the release's five-column layout (families absent from ``clans`` have none)."""
    clans = clans or {}
    with gzip.open(folder / "Pfam-A.hmm.gz", "wb") as handle:
        for model in models.values():
            model.write(handle)
    rows = [
        "\t".join(
            (
                name,
                *clans.get(name, NO_CLAN),
                hmm.text(model.name),
                hmm.text(model.description),
            )
        )
        + "\n"
        for name, model in models.items()
    ]
    with gzip.open(folder / "Pfam-A.clans.tsv.gz", "wt") as handle:
        handle.writelines(rows)


# ---------------------------------------------------------------- MIBiG


def genbank_record(
    bgc_id: str, genes: Sequence[Sequence[str]], models: Mapping[str, object]
) -> bytes:
    """A GenBank record whose CDSs translate to the concatenated consensus of their families.

    Features are written in reverse gene order: the reader must order genes by position.
    """
    features, position = [], 0
    for number, families in enumerate(genes):
        protein = "".join(hmm.consensus_sequence(models[name]) for name in families)
        end = position + 3 * (len(protein) + 1)
        features.append(
            SeqFeature(
                FeatureLocation(position, end, strand=1),
                type="CDS",
                qualifiers={"protein_id": [f"{bgc_id[-2:]}P{number}.1"], "translation": [protein]},
            )
        )
        position = end + 60
    record = SeqRecord(
        Seq("N" * position),
        id=bgc_id,
        name=bgc_id,
        description="stand-in",
        annotations={"molecule_type": "DNA"},
        features=features[::-1],
    )
    handle = io.StringIO()
    SeqIO.write(record, handle, "genbank")
    return handle.getvalue().encode()


def write_mibig_release(
    folder: Path, json_records: Mapping[str, bytes], genbank: Mapping[str, bytes]
) -> None:
    """MIBiG 3.1's two tarballs: ``<id>.json`` and ``<id>.gbk`` members under the release's
    folder names (``json_records`` and ``genbank`` are keyed by BGC id)."""
    tarball(
        folder / remote.REMOTE_FILES["mibig_json"].filename,
        "mibig_json_3.1",
        {f"{bgc_id}.json": payload for bgc_id, payload in json_records.items()},
    )
    tarball(
        folder / remote.REMOTE_FILES["mibig_gbk"].filename,
        "mibig_gbk_3.1",
        {f"{bgc_id}.gbk": payload for bgc_id, payload in genbank.items()},
    )


# ---------------------------------------------------------------- models


def save_tiny_esm1b(
    path: Path,
    *,
    layers: int = 2,
    embed_dim: int = 32,
    attention_heads: int = 4,
    max_positions: int = 64,
) -> None:
    """A tiny seeded ESM-1b in fair-esm's published checkpoint format (``args`` and the
    fairseq-prefixed state dict, no contact head)."""
    from argparse import Namespace

    import esm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        alphabet = esm.data.Alphabet.from_architecture("roberta_large")
        args = Namespace(
            arch="roberta_large",
            layers=layers,
            embed_dim=embed_dim,
            ffn_embed_dim=2 * embed_dim,
            attention_heads=attention_heads,
            max_positions=max_positions,
            token_dropout=True,
            emb_layer_norm_before=True,
        )
        network = esm.ProteinBertModel(args, alphabet)
    state = {
        (
            f"encoder.{key}" if key.startswith("lm_head") else f"encoder.sentence_encoder.{key}"
        ): value
        for key, value in network.state_dict().items()
        if not key.startswith("contact_head")
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"args": args, "model": state}, path)


def official_sizes(config) -> dict[str, object]:
    """The official file's size keys for a :class:`~crossgran.profiles.BigcarpConfig`."""
    return {
        "d_embed": config.d_embedding,
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "kernel_size": config.kernel_size,
        "r": config.r,
        "activation": config.activation,
    }


def write_official_bigcarp(
    path: Path,
    tokens: Mapping[str, object],
    pfam_to_domain: Mapping[str, str],
    sizes: Mapping[str, object],
    *,
    frozen: bool = False,
) -> dict:
    """A stand-in official BiGCARP checkpoint built as sequence_models' load_carp builds the
    released models (note its padding_idx: the mask, as in BiGCARP's training script); no
    all-ones LayerNorm, so every weight counts. Returns the saved dict."""
    from sequence_models.convolutional import ByteNetLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        network = ByteNetLM(
            tokens["size"],
            sizes["d_embed"],
            sizes["d_model"],
            sizes["n_layers"],
            sizes["kernel_size"],
            sizes["r"],
            dropout=0.0,
            activation=sizes["activation"],
            causal=False,
            padding_idx=tokens["specials"]["#"],
            final_ln=True,
            slim=True,
            n_frozen_embs=N_FROZEN if frozen else None,
        )
        for parameter in network.parameters():
            parameter.data += 0.1 * torch.randn_like(parameter)
    data = {
        "model": "bigcarp_esm1bfrozen" if frozen else "bigcarp_random",
        **sizes,
        "slim": True,
        "tokens": dict(tokens),
        "pfam_to_domain": dict(pfam_to_domain),
        "model_state_dict": network.state_dict(),
    }
    with open(path, "wb") as handle:
        torch.save(data, handle)
    return data


def official_layout(
    families: Iterable[str], classes: Sequence[str], *, unknown_every: int = 0
) -> tuple[dict, dict[str, str]]:
    """(tokens, pfam_to_domain) of a checkpoint naming ``families``: specials pad ``-``, mask
    ``#``, then ``classes``; one domain token per family, ``UNK`` first. With
    ``unknown_every`` k, every k-th family (sorted) gets no token, as Pfam families newer than
    the release's annotation have none."""
    specials = {"-": 0, "#": 1, **{name: 2 + n for n, name in enumerate(classes)}}
    named = [
        name
        for n, name in enumerate(sorted(families))
        if not (unknown_every and n % unknown_every == unknown_every - 1)
    ]
    domains = {"UNK": len(specials)}
    for name in named:
        domains[f"dom_{name}"] = len(specials) + len(domains)
    tokens = {"size": len(specials) + len(domains), "specials": specials, "domains": domains}
    return tokens, {name: f"dom_{name}" for name in named}


# ---------------------------------------------------------------- the rehearsal's release


@dataclass(frozen=True)
class RehearsalRelease:
    """What :func:`write_rehearsal_release` served: the folder, the MIBiG BGCs (classes,
    genes in gene order as Pfam families per protein) and the halogenase BGCs' labels."""

    folder: Path
    bgcs: pd.DataFrame  # bgc_id, classes (';'), genes (list of tuples)
    halogenase_labels: pd.Series  # bgc_id -> has_halogen (labelled halogenase BGCs served)
    families: tuple[str, ...]


def _genes(bgc_id: str, bag: Sequence[str], per_gene: int = 3) -> list[tuple[str, ...]]:
    """The bag in a seeded order (by the id), cut into proteins of up to ``per_gene`` domains:
    GECCO keeps counts, not order, so the stand-in invents one, deterministically."""
    rng = np.random.default_rng(int(bgc_id[3:]))
    order = [bag[i] for i in rng.permutation(len(bag))]
    return [tuple(order[i : i + per_gene]) for i in range(0, len(order), per_gene)]


def _go_terms(go: pd.Series) -> dict[str, set[str]]:
    """GO term -> the families (index of ``go``: ';'-joined terms per family) that hold it."""
    holders: dict[str, set[str]] = {}
    for family, text in go.dropna().items():
        for term in filter(None, str(text).split(";")):
            holders.setdefault(term, set()).add(family)
    return holders


def _covering_bgcs(
    counts: pd.DataFrame,
    candidates: Sequence[str],
    chosen: set[str],
    members: set[str],
    wanted: int,
) -> set[str]:
    """``candidates`` (smallest bag first, then id) added to ``chosen`` until the families of
    the chosen candidates hold ``wanted`` of ``members`` (or the candidates run out)."""
    families = counts.groupby("bgc_id")["pfam"].agg(set)
    sizes = counts.groupby("bgc_id")["count"].sum()
    pool = set(candidates)
    covered = set().union(*(families[b] for b in chosen & pool)) & members
    added = set()
    for bgc_id in sorted(candidates, key=lambda b: (sizes[b], b)):
        if len(covered) >= wanted:
            break
        new = (families[bgc_id] & members) - covered
        if new and bgc_id not in chosen:
            added.add(bgc_id)
            covered |= new
    return added


def choose_rehearsal_bgcs(
    classes: pd.DataFrame,
    counts: pd.DataFrame,
    halogenases: pd.DataFrame,
    go: pd.Series,
    *,
    per_class: int = 30,
    class_max_tokens: int = 20,
    halogenase_max_tokens: int = 60,
    halogenated: int = 10,
    go_terms: int = 2,
    go_families: int = 24,
) -> list[str]:
    """Labelled BGCs for the rehearsal, sorted by id, enough for every notebook's probes:

    * the first ``per_class`` BGCs of each probe class with at most ``class_max_tokens``
      domains (small bags, many of them: notebook 04 keeps the classes that at least 10 Pfam
      families are associated with, counted over half the BGCs; 30 BGCs of at most 20 domains
      gave the rehearsal three such classes, while GECCO's compositions give 25 BGCs only two,
      one of them with exactly 10 families);
    * every halogenase BGC labelled not halogenated and the first ``halogenated`` labelled
      halogenated, of at most ``halogenase_max_tokens`` domains (each of the halogenation
      probe's folds needs BGCs of the rarer label);
    * BGCs outside notebook 04's association-label half (:func:`association_label_bgcs`),
      smallest first, until the ``go_terms`` GO molecular-function terms most common among
      ``go``'s families (family -> ';'-joined terms) are each held by ``go_families`` of their
      families (notebook 04 probes the terms of at least 20 families seen outside that half);
    * the real BGC0001090.
    """
    sizes = counts.groupby("bgc_id")["count"].sum()
    labelled = classes[classes["labelled"] & classes["bgc_id"].isin(sizes.index)]
    labelled = labelled.sort_values("bgc_id")
    small = labelled[labelled["bgc_id"].map(sizes) <= class_max_tokens]
    chosen = {REAL_BGC}
    for name in PROBE_CLASSES:
        chosen |= set(small.loc[small[name], "bgc_id"].head(per_class))
    fits = set(sizes[sizes <= halogenase_max_tokens].index)
    rows = halogenases[halogenases["bgc_id"].isin(fits) & halogenases["has_halogen"].notna()]
    rows = rows.sort_values("bgc_id")
    chosen |= set(rows.loc[~rows["has_halogen"].astype(bool), "bgc_id"])
    chosen |= set(rows.loc[rows["has_halogen"].astype(bool), "bgc_id"].head(halogenated))
    ids = labelled["bgc_id"].to_numpy()
    outside = list(ids[~association_label_bgcs(list(ids))])
    holders = _go_terms(go)
    for term in sorted(holders, key=lambda t: (-len(holders[t]), t))[:go_terms]:
        chosen |= _covering_bgcs(counts, outside, chosen, holders[term], go_families)
    return sorted(chosen)


def write_rehearsal_release(folder: Path, raw_dir: Path, profile: Profile) -> RehearsalRelease:
    """Every remote file ``profile`` (``rehearsal``) reads, under its real file name, built
    from the offline data in ``raw_dir``'s pinned wheels.

    MIBiG: the BGCs of :func:`choose_rehearsal_bgcs` with GECCO's classes (and NPLinker's
    Other), each a GenBank record of its GECCO bag (:func:`genbank_record`, genes from
    :func:`_genes`) and a JSON record with NPLinker's compound structures; BGC0001090's real
    GenBank record. Pfam: the HMMs of every family those BGCs hold, and of the NRPS families.
    ESM: a tiny ESM-1b of ``profile.esm``'s shape; BiGCARP: an official random-init checkpoint
    of ``profile.bigcarp``'s network naming every served family but every 25th.
    """
    gecco = sources.fetch_wheel("gecco", raw_dir)
    nplinker = sources.fetch_wheel("nplinker", raw_dir)
    report = BuildReport()
    classes, counts = build_mibig(gecco, report, None, nplinker=nplinker)
    extra = build_offline_halogenation(nplinker, classes, counts, report)
    models = gecco_hmms(raw_dir)
    go = build_pfam_families(list(models.values()), gecco).set_index("pfam")
    chosen = choose_rehearsal_bgcs(
        classes, counts, extra["halogenase_bgcs"], go["go_molecular_function"]
    )
    mine = counts[counts["bgc_id"].isin(chosen) & counts["pfam"].isin(set(models))]
    families = sorted({*mine["pfam"], *NRPS_FAMILIES, TRP_HALOGENASE})
    write_pfam_release(folder, {name: models[name] for name in families})

    bags = {
        bgc_id: [row.pfam for row in group.itertuples() for _ in range(row.count)]
        for bgc_id, group in mine.sort_values(["bgc_id", "pfam"]).groupby("bgc_id")
    }
    structures = extra["compounds"].set_index("bgc_id")
    by_id = classes.set_index("bgc_id")
    json_records, genbank, rows = {}, {}, []
    for bgc_id in chosen:
        labels = by_id.at[bgc_id, "classes"].split(";")
        compounds = structures.loc[[bgc_id]] if bgc_id in structures.index else structures.iloc[:0]
        json_records[bgc_id] = json_record(
            bgc_id,
            labels,
            [
                {"compound": str(c.compound), "chem_struct": str(c.smiles)}
                for c in compounds.itertuples()
            ],
        )
        if bgc_id == REAL_BGC:
            genbank[bgc_id] = sources.pyhmmer_file(f"{REAL_BGC}.gbk").read_bytes()
            genes: list[tuple[str, ...]] = []
        else:
            genes = _genes(bgc_id, bags.get(bgc_id, []))
            genbank[bgc_id] = genbank_record(bgc_id, genes, models)
        rows.append({"bgc_id": bgc_id, "classes": ";".join(labels), "genes": genes})
    write_mibig_release(folder, json_records, genbank)

    esm_weights = remote.REMOTE_FILES[remote.fair_esm_weights(profile.esm.spec)]
    save_tiny_esm1b(
        folder / esm_weights.filename,
        layers=profile.esm.num_layers,
        embed_dim=profile.esm.embed_dim,
        attention_heads=profile.esm.attention_heads,
        max_positions=1024,  # ESM-1b's: longer proteins are embedded in windows, as in full
    )
    tokens, pfam_to_domain = official_layout(families, PROBE_CLASSES, unknown_every=25)
    write_official_bigcarp(
        folder / remote.REMOTE_FILES[remote.OFFICIAL_BIGCARP_RANDOM].filename,
        tokens,
        pfam_to_domain,
        official_sizes(profile.bigcarp),
    )
    halogenases = extra["halogenase_bgcs"].set_index("bgc_id")["has_halogen"]
    served = halogenases[halogenases.index.isin(chosen)].dropna()
    return RehearsalRelease(folder, pd.DataFrame(rows), served, tuple(families))
