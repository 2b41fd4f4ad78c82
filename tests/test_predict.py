"""``crossgran predict`` end to end on the smoke profile's models, built here as notebook 02
builds them: real MIBiG and PARAS tables, a real MIBiG GenBank record (BGC0001090, an NRPS
cluster), the package's own annotation, embeddings and probes.

The models are tiny (a 2-layer ESM trained for 30 steps, BiGCARP for one epoch), so these tests
check what must hold whatever the weights: every record is read, its domains and A-domains
are found, the outputs are complete and consistent, and every mistake ends in a message that
names the file and the fix. The probabilities' quality is the notebooks' business (05, 06).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from Bio import SeqIO
from conftest import make_project_root

from crossgran import predict
from crossgran.cache import ArrayCache
from crossgran.cli import main
from crossgran.data.corpus import annotate
from crossgran.data.pfam import AMP_BINDING
from crossgran.data.sources import pyhmmer_file
from crossgran.data.tables import profile_hmms
from crossgran.models import runs
from crossgran.models.esm import load_esm
from crossgran.profiles import Profile, get_profile
from crossgran.threads import limit

pytestmark = pytest.mark.slow

BGC = pyhmmer_file("BGC0001090.gbk")


@pytest.fixture(scope="module")
def built(smoke_profile: Profile, smoke_build) -> Profile:
    """The smoke profile with notebook 02's models and tables (ESM pretraining, embeddings,
    the BiGCARP runs and their exports)."""
    with limit(torch_threads=2):
        runs.pretrain_local_esm(smoke_profile)
        model = load_esm(smoke_profile.esm.spec, smoke_profile.models_dir, device="cpu")
        cache = ArrayCache(smoke_profile.cache_dir)
        family, _ = runs.embed_tables(smoke_profile, model, cache)
        runs.embed_untrained_tables(smoke_profile, model, cache)  # a model to swap in
        runs.train_bigcarp_runs(smoke_profile, family)
        runs.export_bigcarp_runs(smoke_profile)
    return smoke_profile


@pytest.fixture(scope="module")
def bgc_prediction(built: Profile, tmp_path_factory: pytest.TempPathFactory) -> predict.Prediction:
    out = tmp_path_factory.mktemp("predictions")
    return predict.predict_files(built, [BGC], out)


def _annotated_adomains(profile: Profile, path: Path) -> int:
    """AMP-binding hits in the record's annotated proteins, counted independently of the
    predictor (the profile's HMMs, overlaps resolved)."""
    proteins = {
        f"p{i}": f.qualifiers["translation"][0]
        for record in SeqIO.parse(path, "genbank")
        for i, f in enumerate(record.features)
        if f.type == "CDS" and "translation" in f.qualifiers
    }
    hmms, sha = profile_hmms(profile)
    hits = annotate(proteins, hmms, sha, profile)
    return int((hits["pfam"] == AMP_BINDING).sum())


def test_bgc0001090_is_read_annotated_and_its_adomains_predicted(
    built: Profile, bgc_prediction: predict.Prediction
) -> None:
    (prediction,) = bgc_prediction.records
    assert prediction.record.name == "BGC0001090"
    assert prediction.record.gene_source == "annotated"
    expected = _annotated_adomains(built, BGC)
    assert expected >= 1
    assert len(prediction.adomains) == expected
    properties = list(bgc_prediction.predictor.adomain_models)
    values = prediction.adomains[properties].to_numpy()
    assert values.shape == (expected, 6) and np.all((values >= 0) & (values <= 1))
    # A-domains run through AMP-binding_C where it follows, as PARAS cuts them (~400-500 aa)
    assert prediction.adomains["length"].between(300, 700).all()
    classes = prediction.classes
    assert list(classes["class"]) == bgc_prediction.predictor.classes
    for name in predict.CLASS_FEATURES:
        assert classes[name].between(0, 1).all()
    assert prediction.top_class in bgc_prediction.predictor.classes
    assert bgc_prediction.built_predictor


def test_outputs_are_complete_and_agree(bgc_prediction: predict.Prediction) -> None:
    out = bgc_prediction.files[0].parent
    names = sorted(p.name for p in bgc_prediction.files)
    assert names == sorted(
        ["BGC0001090.png", "adomains.tsv", "classes.tsv", "domains.tsv", "predictions.json"]
    )
    assert not [p for p in out.iterdir() if p.name.startswith(".predict-")]
    (prediction,) = bgc_prediction.records
    document = json.loads((out / "predictions.json").read_text())
    (record,) = document["records"]
    assert record["top_class"] == prediction.top_class
    assert record["domains"] == len(prediction.domains)
    classes = pd.read_csv(out / "classes.tsv", sep="\t")
    np.testing.assert_allclose(classes["fused"], prediction.classes["fused"], atol=1e-4)
    calibration = document["predictor"]["calibration"]["fused"]
    assert 0 <= calibration["brier"] <= 1 and calibration["reliability"]
    assert sum(b["n"] for b in calibration["reliability"]) == (
        document["predictor"]["training"]["bgcs"] * len(document["predictor"]["classes"])
    )


def test_a_record_without_translations_gets_the_same_prediction(
    built: Profile, bgc_prediction: predict.Prediction, tmp_path: Path
) -> None:
    records = list(SeqIO.parse(BGC, "genbank"))
    for record in records:
        for feature in record.features:
            feature.qualifiers.pop("translation", None)
    bare = tmp_path / "no_translations.gbk"
    SeqIO.write(records, bare, "genbank")
    (prediction,) = predict.predict_files(built, [bare], tmp_path / "out").records
    (reference,) = bgc_prediction.records
    assert prediction.record.gene_source == "translated"
    assert list(prediction.domains["pfam"]) == list(reference.domains["pfam"])
    np.testing.assert_allclose(prediction.classes["fused"], reference.classes["fused"], atol=1e-6)


def test_a_nucleotide_only_record_gets_genes_called_and_its_adomains_found(
    built: Profile, bgc_prediction: predict.Prediction, tmp_path: Path
) -> None:
    records = list(SeqIO.parse(BGC, "genbank"))
    for record in records:
        record.features = [f for f in record.features if f.type == "source"]
    bare = tmp_path / "nucleotides.gbk"
    SeqIO.write(records, bare, "genbank")
    (prediction,) = predict.predict_files(built, [bare], tmp_path / "out").records
    (reference,) = bgc_prediction.records
    assert prediction.record.gene_source == "pyrodigal"
    assert any("pyrodigal" in note for note in prediction.record.notes)
    assert len(prediction.adomains) == len(reference.adomains)


def test_several_records_in_one_file(built: Profile, tmp_path: Path) -> None:
    (record,) = SeqIO.parse(BGC, "genbank")
    twin = record[:]
    twin.id = twin.name = "BGC0001090_copy"
    both = tmp_path / "two.gbk"
    SeqIO.write([record, twin], both, "genbank")
    result = predict.predict_files(built, [both], tmp_path / "out", figures=False)
    assert [p.record.name for p in result.records] == ["BGC0001090", "BGC0001090_copy"]
    first, second = result.records
    assert list(first.domains["pfam"]) == list(second.domains["pfam"])
    classes = pd.read_csv(tmp_path / "out" / "classes.tsv", sep="\t")
    assert classes["record"].nunique() == 2


def test_a_record_without_any_pfam_domain_is_an_error_and_writes_nothing(
    built: Profile, bgc_prediction: predict.Prediction, tmp_path: Path
) -> None:
    """A real protein of BGC0001090 without any Pfam hit, on its own."""
    (reference,) = bgc_prediction.records
    with_hits = set(reference.domains["protein"])
    bare_key = next(k for k in reference.record.proteins if k not in with_hits)
    fasta = tmp_path / "lonely.faa"
    fasta.write_text(f">lonely\n{reference.record.proteins[bare_key]}\n")
    out = tmp_path / "out"
    with pytest.raises(predict.RecordError, match=r"'lonely'.*no Pfam domain"):
        predict.predict_files(built, [fasta], out)
    assert not out.exists() or not any(out.iterdir())


def test_probes_trained_for_other_models_are_refused(built: Profile, tmp_path: Path) -> None:
    """Swap the ESM family vectors for the untrained model's (what retraining the ESM would
    do): the stored probes now read another feature space and must be refused."""
    predict.ensure_predictor(built)
    family = built.processed_dir / "esm_pfam.npz"
    kept = tmp_path / "esm_pfam.npz"
    shutil.copy2(family, kept)
    try:
        shutil.copy2(built.processed_dir / "esm_pfam_untrained.npz", family)
        with pytest.raises(predict.PredictorMismatch, match="crossgran train-predictor"):
            predict.load_predictor(built)
    finally:
        shutil.copy2(kept, family)
    assert predict.load_predictor(built).recipe == predict.current_recipe(built)


def test_a_profile_without_models_names_the_command_that_builds_them(tmp_path: Path) -> None:
    settings = get_profile("smoke", root=make_project_root(tmp_path / "fresh"))
    with pytest.raises(FileNotFoundError, match=r"crossgran run --profile smoke 01 02"):
        predict.predict_files(settings, [BGC], tmp_path / "out")


def test_cli_prints_and_writes_the_prediction(
    built: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CROSSGRAN_ROOT", str(built.root))
    out = tmp_path / "cli"
    assert main(["predict", str(BGC), "--profile", "smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "BGC0001090" in printed and "top class (fused)" in printed and "Brier" in printed
    assert (out / "predictions.json").is_file()
    not_genbank = tmp_path / "table.csv"
    not_genbank.write_text("bgc,class\nBGC0001090,NRP\n")
    assert main(["predict", str(not_genbank), "--profile", "smoke", "--out", str(out)]) == 2
    assert "table.csv" in capsys.readouterr().err


def test_stored_probes_round_trip(built: Profile) -> None:
    predictor, _ = predict.ensure_predictor(built)
    again = joblib.load(predict.predictor_path(built))
    assert again.recipe == predictor.recipe and again.classes == predictor.classes
    summary = json.loads(predict.predictor_path(built).with_suffix(".json").read_text())
    assert summary["recipe"]["bigcarp_epoch"] == predictor.recipe.bigcarp_epoch


def test_the_readme_predict_example_runs_as_written(
    built: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first command of the README's "Your own sequences", on BGC0001090 copied to the
    name it uses and with the smoke profile's models (the README's default is mini)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Your own sequences") :]
    block = re.search(r"```bash\n(crossgran predict.*?)```", section, re.DOTALL).group(1)
    (command,) = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CROSSGRAN_ROOT", str(built.root))
    shutil.copy2(BGC, tmp_path / "my_cluster.gbk")
    assert main([*command[1:], "--profile", "smoke"]) == 0
    document = json.loads((tmp_path / "predictions" / "predictions.json").read_text())
    assert [r["record"] for r in document["records"]] == ["my_cluster"]
