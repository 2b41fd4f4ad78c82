"""From a user's records to predictions, with the package's own parts at every step.

1. Pfam annotation: :func:`crossgran.data.corpus.annotate` with the profile's HMMs (gathering
   cutoffs, overlaps resolved by score, as for the training corpus; cached by content).
2. Pfam tokens in gene order, per record; the share outside BiGCARP's vocabulary.
3. Product-class features exactly as the probes were trained on them
   (:class:`~crossgran.predict.artifact.Recipe`): the count-weighted mean of the profile's ESM
   family vectors, and BiGCARP's last layer averaged over the record's tokens, read as the MIBiG
   training rows were read (in random orders when they were bags, in gene order when they
   were gene-ordered).
4. NRPS A-domains: each AMP-binding (PF00501) hit, extended to the end of an AMP-binding_C
   (PF13193) hit that directly follows it, which is how PARAS cuts its A-domains (median Jaccard
   overlap 1.00 with PARAS's boundaries on its 3,653 A-domains, 0.83 for the AMP-binding hit
   alone); ESM's mean over that sequence beside BiGCARP's AMP-binding token in its protein.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sequence_models.convolutional import ByteNetLM
from tqdm import tqdm

from crossgran.analysis.features import count_weighted_mean
from crossgran.cache import ArrayCache
from crossgran.data.corpus import annotate
from crossgran.data.genbank import InputRecord, RecordError
from crossgran.data.pfam import AMP_BINDING, AMP_BINDING_C
from crossgran.data.tables import profile_hmms
from crossgran.models.bigcarp import (
    TrainedRun,
    load_checkpoint,
    sequence_representations,
    token_representations,
)
from crossgran.models.bigcarp.vocab import Vocabulary
from crossgran.models.esm import EmbeddingResult, embed, load_esm
from crossgran.models.runs import bigcarp_run_dir
from crossgran.predict.artifact import CLASS_FEATURES, Predictor, PredictorMismatch
from crossgran.profiles import Profile

__all__ = ["HIGH_OUT_OF_VOCABULARY", "RecordPrediction", "adomain_spans", "predict_records"]

# Above this share of a record's domains outside BiGCARP's vocabulary, the domain-level
# features rest mostly on the <unk> token, and the output says so.
HIGH_OUT_OF_VOCABULARY = 0.2


@dataclass
class RecordPrediction:
    """What ``crossgran predict`` reports for one record.

    ``domains``: the overlap-resolved Pfam hits in gene order (protein, pfam, pfam_name,
    start, end, score, in_vocabulary); ``classes``: one row per class, one probability column
    per feature set of :data:`~crossgran.predict.artifact.CLASS_FEATURES`; ``adomains``: one row
    per A-domain (protein, start, end, length) with a probability column per substrate property.
    """

    record: InputRecord
    domains: pd.DataFrame
    classes: pd.DataFrame
    adomains: pd.DataFrame
    out_of_vocabulary: float
    warnings: list[str]

    @property
    def top_class(self) -> str:
        """The class the fused probe finds most probable."""
        return str(self.classes.loc[self.classes["fused"].idxmax(), "class"])


def adomain_spans(domains: pd.DataFrame) -> pd.DataFrame:
    """One row per AMP-binding hit of ``domains`` (one protein's or many, gene order): protein,
    token_index (its position in the protein's token list), start and end of the A-domain
    (through a directly following AMP-binding_C hit, see the module docstring)."""
    rows = []
    for protein, hits in domains.groupby("protein", sort=False):
        hits = hits.reset_index(drop=True)
        for index, hit in hits.iterrows():
            if hit["pfam"] != AMP_BINDING:
                continue
            end = hit["end"]
            if index + 1 < len(hits) and hits.loc[index + 1, "pfam"] == AMP_BINDING_C:
                end = hits.loc[index + 1, "end"]
            rows.append((protein, index, int(hit["start"]), int(end)))
    return pd.DataFrame(rows, columns=["protein", "token_index", "start", "end"])


def _record_domains(record: InputRecord, hits: pd.DataFrame, vocab: Vocabulary) -> pd.DataFrame:
    """The record's hits in gene order, each marked in or out of BiGCARP's vocabulary."""
    order = {key: i for i, key in enumerate(record.proteins)}
    mine = hits[hits["seq_id"].isin(order)].copy()
    if mine.empty:
        raise RecordError(
            f"record {record.name!r} ({record.source}): no Pfam domain passes its gathering "
            f"cutoff in any of its {len(record.proteins)} proteins; the probes read Pfam domains, "
            "so there is nothing to predict from. Check that the input holds a gene cluster's "
            "proteins (not a single short gene or a nucleotide misread as protein)."
        )
    mine["gene"] = mine["seq_id"].map(order)
    mine = mine.sort_values(["gene", "start"], kind="stable").rename(columns={"seq_id": "protein"})
    mine["in_vocabulary"] = mine["pfam"].isin(vocab.index)
    columns = ["protein", "pfam", "pfam_name", "start", "end", "score", "in_vocabulary"]
    return mine[columns].reset_index(drop=True)


def _class_features(
    predictor: Predictor,
    family: EmbeddingResult,
    run_model: ByteNetLM,
    vocab: Vocabulary,
    names: list[str],
    tokens: list[list[str]],
) -> dict[str, np.ndarray]:
    recipe = predictor.recipe
    counts = (
        pd.DataFrame(
            [(name, pfam) for name, bag in zip(names, tokens, strict=True) for pfam in bag],
            columns=["bgc_id", "pfam"],
        )
        .value_counts()
        .rename("count")
        .reset_index()
    )
    esm = count_weighted_mean(counts, names, family.ids, family.mean[recipe.esm_layer])
    corpus = pd.DataFrame(
        {
            "seq_id": names,
            "tokens": [" ".join(bag) for bag in tokens],
            "ordered": recipe.bgc_order == "gene order",
        }
    )
    bigcarp = sequence_representations(
        run_model, vocab, corpus, [recipe.bigcarp_layer], recipe.n_orders, recipe.seed
    )[recipe.bigcarp_layer]
    return {"esm": esm, "bigcarp": bigcarp, "fused": np.hstack([esm, bigcarp])}


def _adomain_table(
    settings: Profile,
    predictor: Predictor,
    records: Sequence[InputRecord],
    domains: Sequence[pd.DataFrame],
    run: TrainedRun,
    progress: bool,
) -> list[pd.DataFrame]:
    """Per record, its A-domains with a probability per substrate property (empty when the
    record has none; the ESM is loaded only if some record has one)."""
    spans = [adomain_spans(table) for table in domains]
    properties = list(predictor.adomain_models)
    if not any(len(table) for table in spans):
        return [pd.DataFrame(columns=[*span.columns, "length", *properties]) for span in spans]
    recipe = predictor.recipe
    model = load_esm(settings.esm.spec, settings.models_dir)
    if model.model_id != recipe.esm_model_id:
        raise PredictorMismatch(
            f"the profile's ESM is {model.model_id} but the probes were trained on "
            f"{recipe.esm_model_id}; rebuild them: crossgran train-predictor --profile "
            f"{settings.name}"
        )
    proteins = {key: seq for record in records for key, seq in record.proteins.items()}
    sequences = {
        f"{row.protein}:{row.start}-{row.end}": proteins[row.protein][row.start : row.end]
        for table in spans
        for row in table.itertuples()
    }
    embedded = embed(
        sequences,
        model,
        [recipe.esm_layer],
        cache=ArrayCache(settings.cache_dir),
        batch_tokens=settings.esm.embed_batch_tokens,
        progress=progress,
    )
    esm_mean = dict(zip(embedded.ids, embedded.mean[recipe.esm_layer], strict=True))
    out = []
    for span, table in zip(spans, domains, strict=True):
        span = span.copy()
        span["length"] = span["end"] - span["start"]
        if len(span):
            sentences = {key: list(group["pfam"]) for key, group in table.groupby("protein")}
            tokens = token_representations(
                run.model,
                run.vocab,
                sentences,
                list(zip(span["protein"], span["token_index"], strict=True)),
                [recipe.bigcarp_layer],
            )[recipe.bigcarp_layer]
            residues = np.stack(
                [esm_mean[f"{row.protein}:{row.start}-{row.end}"] for row in span.itertuples()]
            )
            features = np.hstack([tokens, residues])
            for prop, probe in predictor.adomain_models.items():
                span[prop] = probe.predict_proba(features)[:, 1]
        else:
            span = span.reindex(columns=[*span.columns, *properties])
        out.append(span)
    return out


def predict_records(
    settings: Profile,
    records: Sequence[InputRecord],
    predictor: Predictor,
    *,
    progress: bool = False,
) -> list[RecordPrediction]:
    """Predictions for ``records`` with ``predictor`` (see the module docstring). A record
    without a single Pfam domain is an error naming it; nothing is predicted for any record
    then, so a batch's outputs are never partial."""
    hmms, hmm_sha = profile_hmms(settings)
    proteins = {key: seq for record in records for key, seq in record.proteins.items()}
    hits = annotate(proteins, hmms, hmm_sha, settings)
    run = load_checkpoint(bigcarp_run_dir(settings, "random"), predictor.recipe.bigcarp_epoch)
    domains = [_record_domains(record, hits, run.vocab) for record in records]
    names = [record.name for record in records]
    family = EmbeddingResult.load(settings.processed_dir / "esm_pfam.npz")
    features = _class_features(
        predictor, family, run.model, run.vocab, names, [list(t["pfam"]) for t in domains]
    )
    adomains = _adomain_table(settings, predictor, records, domains, run, progress)
    results = []
    for i, record in enumerate(tqdm(records, desc="records", disable=not progress)):
        classes = pd.DataFrame({"class": predictor.classes})
        for name in CLASS_FEATURES:
            classes[name] = predictor.class_models[name].predict_proba(features[name][i : i + 1])[0]
        outside = 1.0 - float(domains[i]["in_vocabulary"].mean())
        warnings = []
        if outside > HIGH_OUT_OF_VOCABULARY:
            warnings.append(
                f"{outside:.0%} of the record's domains are outside BiGCARP's vocabulary "
                "(never seen in its training corpus): the domain-level and fused predictions "
                "rest on the unknown token for them; read the ESM column first"
            )
        results.append(
            RecordPrediction(record, domains[i], classes, adomains[i], outside, warnings)
        )
    return results
