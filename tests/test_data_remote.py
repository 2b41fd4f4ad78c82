"""Remote inputs (crossgran.data.remote) against local HTTP servers on 127.0.0.1, and parsing of
what they serve (crossgran.data.mibig_release).

The fixture release is built from offline facts: the GenBank file is pyhmmer's shipped
BGC0001090.gbk, the classes come from GECCO's MIBiG ``types.tsv`` and the SMILES from PARAS's
``smiles.tsv`` (which BGC a substrate SMILES is attached to is fixture-only). No test touches
any address other than 127.0.0.1: the ``local_only`` fixture (conftest.py) points the mirror at a
closed local port.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import pytest
from Bio import SeqIO
from loopback import HOST, Server, free_port, json_record, serve, serve_folder, tarball

from crossgran.cache import sha256_file
from crossgran.data import hmm, mibig_domains, mibig_release, remote, sources
from crossgran.data.adomains import PARAS_DIR
from crossgran.data.mibig import PRODUCT_CLASSES
from crossgran.data.readers import read_tsv_member
from crossgran.data.remote import FULL_INPUTS, check_inputs
from crossgran.profiles import EsmConfig, get_profile

pytestmark = pytest.mark.usefixtures("local_only")
HALOGENATED, PLAIN = "3-chlorotyrosine", "valine"
FIXTURE_BGCS = ("BGC0000001", "BGC0001090")
JSON, GBK = remote.REMOTE_FILES["mibig_json"], remote.REMOTE_FILES["mibig_gbk"]
# Families BGC0001090's proteins hit (C, A, A-C-terminal, PCP, KS N/C): keeps hmmsearch < 1 s.
SEARCHED = {"PF00668", "PF00501", "PF13193", "PF00550", "PF00109", "PF02801"}
# Announces the full Content-Length, sends half of the body, then hangs up.
TRUNCATING_SERVER = """
import functools, http.server, sys

class Truncating(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        with open(self.translate_path(self.path), "rb") as handle:
            body = handle.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

handler = functools.partial(Truncating, directory=sys.argv[2])
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


@pytest.fixture(scope="module")
def facts(smoke_profile) -> dict[str, object]:
    """Classes (GECCO types.tsv) and SMILES (PARAS smiles.tsv) the fixture release is made of."""
    gecco = sources.fetch_wheel("gecco", smoke_profile.raw_dir)
    paras = sources.fetch_wheel("paras", smoke_profile.raw_dir)
    types = read_tsv_member(
        gecco, "gecco/types/types.tsv", header=None, names=["bgc_id", "classes"]
    )
    smiles = read_tsv_member(paras, f"{PARAS_DIR}/smiles.tsv").set_index("substrate")["smiles"]
    return {
        "classes": types.set_index("bgc_id")["classes"].loc[list(FIXTURE_BGCS)].to_dict(),
        "smiles": {name: smiles[name] for name in (HALOGENATED, PLAIN)},
        "gecco": gecco,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, facts) -> Path:
    """The folder the servers serve: MIBiG-shaped JSON and GenBank tarballs."""
    folder = tmp_path_factory.mktemp("served")
    smiles = facts["smiles"]
    records = {
        "BGC0000001.json": json_record(
            "BGC0000001",
            facts["classes"]["BGC0000001"].split(";"),
            [
                {"compound": PLAIN, "chem_struct": smiles[PLAIN]},
                {"compound": "no structure recorded"},
            ],
        ),
        "BGC0001090.json": json_record(
            "BGC0001090",
            facts["classes"]["BGC0001090"].split(";"),
            [{"compound": HALOGENATED, "chem_struct": smiles[HALOGENATED]}],
        ),
    }
    tarball(folder / JSON.filename, "mibig_json_3.1", records)
    gbk = sources.pyhmmer_file("BGC0001090.gbk").read_bytes()
    tarball(folder / GBK.filename, "mibig_gbk_3.1", {"BGC0001090.gbk": gbk})
    return folder


@pytest.fixture(scope="module")
def server(served: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_folder(served, tmp_path_factory.mktemp("log") / "http.log")


@pytest.fixture()
def truncating(served: Path, tmp_path: Path) -> Iterator[Server]:
    script = tmp_path / "truncating_server.py"
    script.write_text(TRUNCATING_SERVER)
    port = free_port()
    yield from serve(
        [sys.executable, "-u", str(script), str(port), str(served)],
        port,
        tmp_path / "truncating.log",
    )


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    """A profile-like raw folder; its lock then sits at ``tmp_path/data/full.lock.json``."""
    return tmp_path / "data" / "raw"


def _lock(raw: Path) -> dict:
    return json.loads((raw.parent / remote.LOCK_NAME).read_text())


# ---------------------------------------------------------------- registry


def test_registry_holds_the_papers_inputs() -> None:
    urls = {remote.url for remote in remote.REMOTE_FILES.values()}
    mibig_host = "https://dl.secondarymetabolites.org/mibig"
    pfam = "https://ftp.ebi.ac.uk/pub/databases/Pfam/releases/Pfam35.0"
    fair_esm = "https://dl.fbaipublicfiles.com/fair-esm"
    assert {
        f"{mibig_host}/mibig_json_3.1.tar.gz",
        f"{mibig_host}/mibig_gbk_3.1.tar.gz",
        f"{pfam}/Pfam-A.hmm.gz",
        f"{pfam}/Pfam-A.clans.tsv.gz",
        f"{fair_esm}/models/esm1b_t33_650M_UR50S.pt",
        f"{fair_esm}/models/esm2_t33_650M_UR50D.pt",
        f"{fair_esm}/regression/esm1b_t33_650M_UR50S-contact-regression.pt",
        f"{fair_esm}/regression/esm2_t33_650M_UR50D-contact-regression.pt",
    } <= urls
    # BiGCARP: the installed sequence_models builds BIG_URL + "<name>.pt?download=1" (read as
    # text: importing it would import torch).
    source = Path(find_spec("sequence_models.pretrained").origin).read_text()
    big_url = re.search(r"BIG_URL = '([^']+)'", source).group(1)
    for name in ("bigcarp_random", "bigcarp_esm1bfinetune", "bigcarp_esm1bfrozen"):
        assert remote.REMOTE_FILES[name].url == f"{big_url}{name}.pt?download=1"


# ---------------------------------------------------------------- downloads


def test_download_records_lock_and_second_call_makes_no_request(
    server: Server, served: Path, raw: Path
) -> None:
    before = server.gets(JSON.filename)
    path = remote.fetch_remote("mibig_json", raw, base_url=server.url)
    assert path == raw / JSON.filename
    assert sha256_file(path) == sha256_file(served / JSON.filename)
    assert [p.name for p in raw.iterdir()] == [JSON.filename]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o644
    entry = _lock(raw)["mibig_json"]
    assert (
        entry["sha256"] == sha256_file(path) and entry["source"] == f"{server.url}/{JSON.filename}"
    )
    assert server.gets(JSON.filename) == before + 1
    assert remote.fetch_remote("mibig_json", raw, base_url=server.url) == path
    assert server.gets(JSON.filename) == before + 1  # reused: no second request


def test_mirror_env_var_is_used(server: Server, raw: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(remote.MIRROR_ENV, server.url + "/")
    before = server.gets(GBK.filename)
    assert remote.fetch_remote("mibig_gbk", raw).is_file()
    assert server.gets(GBK.filename) == before + 1


def test_locked_hash_is_enforced_on_a_changed_local_file(server: Server, raw: Path) -> None:
    path = remote.fetch_remote("mibig_json", raw, base_url=server.url)
    expected = sha256_file(path)
    path.write_bytes(path.read_bytes()[:-1])
    requests_before = server.gets(JSON.filename)
    with pytest.raises(sources.SourceError) as error:
        remote.fetch_remote("mibig_json", raw, base_url=server.url)
    message = str(error.value)
    assert str(path) in message and expected in message and sha256_file(path) in message
    assert f"delete {path}" in message and "'mibig_json' entry" in message
    assert server.gets(JSON.filename) == requests_before


def test_wrong_locked_hash_keeps_no_download(server: Server, served: Path, raw: Path) -> None:
    lock = raw.parent / remote.LOCK_NAME
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"mibig_json": {"sha256": "0" * 64}}))
    with pytest.raises(sources.SourceError) as error:
        remote.fetch_remote("mibig_json", raw, base_url=server.url)
    message = str(error.value)
    assert str(raw / JSON.filename) in message and "0" * 64 in message
    assert sha256_file(served / JSON.filename) in message and str(lock) in message
    assert list(raw.iterdir()) == []
    assert _lock(raw) == {"mibig_json": {"sha256": "0" * 64}}  # the lock is not overwritten


def test_wrong_pinned_hash_keeps_no_download(
    server: Server, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(remote.REMOTE_FILES, "mibig_gbk", replace(GBK, sha256="f" * 64))
    with pytest.raises(sources.SourceError, match="report it instead of changing the pinned hash"):
        remote.fetch_remote("mibig_gbk", raw, base_url=server.url)
    assert list(raw.iterdir()) == []
    assert not (raw.parent / remote.LOCK_NAME).exists()


def test_truncated_transfer_leaves_nothing_and_next_call_downloads(
    truncating: Server, server: Server, served: Path, raw: Path
) -> None:
    with pytest.raises(sources.SourceError) as error:
        remote.fetch_remote("mibig_gbk", raw, base_url=truncating.url)
    assert f"{truncating.url}/{GBK.filename}" in str(error.value)
    assert truncating.gets(GBK.filename) == 1
    assert list(raw.iterdir()) == []  # neither the target nor pooch's temporary file
    assert not (raw.parent / remote.LOCK_NAME).exists()
    path = remote.fetch_remote("mibig_gbk", raw, base_url=server.url)
    assert (
        sha256_file(path) == sha256_file(served / GBK.filename) == _lock(raw)["mibig_gbk"]["sha256"]
    )


def test_server_gone_names_url_and_fix(raw: Path) -> None:
    gone = f"http://{HOST}:{free_port()}"
    with pytest.raises(sources.SourceError) as error:
        remote.fetch_remote("pfam_clans", raw, base_url=gone)
    message = str(error.value)
    assert f"{gone}/Pfam-A.clans.tsv.gz" in message
    assert remote.MIRROR_ENV in message and str(raw / "Pfam-A.clans.tsv.gz") in message
    assert not raw.exists() or list(raw.iterdir()) == []


# ---------------------------------------------------------------- check_full_inputs


def _placements(message: str) -> dict[str, Path]:
    """name -> path of every "  <name>: place <file> at <path>" line of check_full_inputs."""
    lines = re.findall(r"^  (\S+): place (\S+) at (\S+)$", message, re.MULTILINE)
    assert all(remote.REMOTE_FILES[name].filename == file for name, file, _ in lines)
    return {name: Path(path) for name, _, path in lines}


def test_check_full_inputs_lists_what_the_run_reads_quickly(tmp_path: Path) -> None:
    """Exactly the table build's inputs, the profile's ESM weights and the released random-init
    BiGCARP it imports: not the other ESM, the contact heads or the ESM-init BiGCARP
    checkpoints, which no step of the run reads."""
    profile = get_profile("full", root=tmp_path)
    started = time.monotonic()
    with pytest.raises(sources.SourceError) as error:
        remote.check_full_inputs(profile)  # mirror: the closed port of ``local_only``
    assert time.monotonic() - started < remote.PROBE_TIMEOUT_S + 1
    message = str(error.value)
    hub = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    assert _placements(message) == {
        **{name: profile.raw_dir / remote.REMOTE_FILES[name].filename for name in FULL_INPUTS},
        "esm1b": hub / "esm1b_t33_650M_UR50S.pt",
        "bigcarp_random": profile.raw_dir / remote.REMOTE_FILES["bigcarp_random"].filename,
    }
    assert remote.required_remote_files(profile) == (*FULL_INPUTS, "esm1b", "bigcarp_random")
    assert remote.MIRROR_ENV in message and "unreachable" in message
    assert "$TORCH_HOME/hub/checkpoints" in message


def test_offline_profiles_need_no_remote_file(tmp_path: Path) -> None:
    for name in ("smoke", "mini", "evidence"):
        assert remote.required_remote_files(get_profile(name, root=tmp_path)) == ()
    other_esm = get_profile("full", root=tmp_path, esm=EsmConfig(spec="esm2_t33_650M_UR50D"))
    assert remote.required_remote_files(other_esm) == (*FULL_INPUTS, "esm2_650M", "bigcarp_random")


@pytest.fixture()
def stand_ins(tmp_path: Path) -> Iterator[Server]:
    """A server holding a few bytes under every remote file's name."""
    folder = tmp_path / "stand-ins"
    folder.mkdir()
    for entry in remote.REMOTE_FILES.values():
        (folder / entry.filename).write_bytes(f"stand-in for {entry.name}".encode())
    yield from serve_folder(folder, tmp_path / "stand-ins.log")


def test_check_download_and_loader_agree_on_every_remote_path(
    stand_ins: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For every remote file: the path the check asks for is the path the download writes
    and, for fair-esm's files, the path load_esm reads (weights, and the contact head beside
    them)."""
    from crossgran.models import esm as cesm

    profile = get_profile("full", root=tmp_path / "root")
    monkeypatch.setattr(remote, "RUN_INPUTS", (lambda _: tuple(remote.REMOTE_FILES),))
    with pytest.raises(sources.SourceError) as error:
        remote.check_full_inputs(profile)
    asked = _placements(str(error.value))
    assert set(asked) == set(remote.REMOTE_FILES)
    for key, model in remote.FAIR_ESM_MODELS.items():
        with pytest.raises(cesm.ModelFilesMissingError) as missing:
            cesm.load_esm(model, device="cpu")
        message = str(missing.value)
        assert message.startswith(f"ESM weights not found: {asked[key]}\n")
        assert f"(optional, only for contact prediction: {asked[f'{key}_regression']} " in message
    lock = remote.full_lock_path(profile.root)
    for name, path in asked.items():
        assert remote.fetch_remote(name, profile.raw_dir, stand_ins.url, lock) == path
        assert path.read_bytes() == f"stand-in for {name}".encode()
    assert set(remote.read_lock(lock)) == set(remote.REMOTE_FILES)
    remote.check_full_inputs(profile)  # everything where the check looks: no probe, no error


def test_check_full_inputs_never_hangs_on_a_stuck_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe that blocks (as name resolution can, ignoring socket timeouts) is abandoned."""
    monkeypatch.setattr(remote, "PROBE_TIMEOUT_S", 0.5)

    def stuck(*args: object, **kwargs: object) -> None:
        time.sleep(2)  # outlives the probe's deadline, then fails as a timed-out lookup would
        raise OSError("timed out")

    monkeypatch.setattr(remote.socket, "create_connection", stuck)
    started = time.monotonic()
    with pytest.raises(sources.SourceError, match="unreachable"):
        remote.check_full_inputs(get_profile("full", root=tmp_path))
    assert time.monotonic() - started < 1.5


def test_check_full_inputs_passes_when_reachable_or_present(server: Server, tmp_path: Path) -> None:
    profile = get_profile("full", root=tmp_path)
    remote.check_full_inputs(profile, base_url=server.url)  # missing, but downloadable
    for name in remote.required_remote_files(profile):
        path = remote.remote_path(name, profile.raw_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    remote.check_full_inputs(profile)  # all present: no probe needed, mirror is closed


def test_check_inputs_probes_only_for_downloading_profiles(tmp_path: Path) -> None:
    """``profile.downloads`` decides, not the profile's name: an offline profile never probes
    (its wheels are hash-checked when read), the same profile downloading stops here."""
    check_inputs(get_profile("smoke", root=tmp_path))
    with pytest.raises(sources.SourceError, match="unreachable"):
        check_inputs(get_profile("smoke", root=tmp_path, downloads=True))


# ---------------------------------------------------------------- parsing the release


def test_downloaded_release_parses_into_offline_shapes(
    server: Server, raw: Path, facts, smoke_profile
) -> None:
    json_tarball = remote.fetch_remote("mibig_json", raw, base_url=server.url)
    classes, compounds = mibig_release.read_json_release(json_tarball)
    assert list(classes["bgc_id"]) == list(FIXTURE_BGCS)
    assert classes.set_index("bgc_id")["classes"].to_dict() == facts["classes"]
    row = classes.set_index("bgc_id").loc["BGC0001090"]
    assert [name for name in PRODUCT_CLASSES if row[name]] == ["Polyketide", "NRP"]
    assert row["labelled"] and not row["Other"]
    halogen = compounds.set_index("compound")["has_halogen"]
    assert bool(halogen[HALOGENATED]) is True and bool(halogen[PLAIN]) is False
    assert len(compounds) == 2  # the compound without chem_struct gives no row

    gbk_tarball = remote.fetch_remote("mibig_gbk", raw, base_url=server.url)
    proteins = mibig_release.read_genbank_release(gbk_tarball)
    record = SeqIO.read(sources.pyhmmer_file("BGC0001090.gbk"), "genbank")
    cds = [f for f in record.features if f.type == "CDS"]
    assert list(proteins) == ["BGC0001090"]
    assert list(proteins["BGC0001090"].values()) == [f.qualifiers["translation"][0] for f in cds]
    assert [key.split(":")[2] for key in proteins["BGC0001090"]] == [
        f"ABS{n}.1" for n in range(74177, 74187)
    ]

    hmm_file = sources.extract_wheel_member(
        facts["gecco"], "gecco/hmmer/Pfam.h3m", smoke_profile.raw_dir / "extracted"
    )
    models = [
        m for m in hmm.read_hmms(hmm_file) if hmm.pfam_accession(hmm.text(m.accession)) in SEARCHED
    ]
    hits = hmm.resolve_overlaps(hmm.search_domains(models, proteins["BGC0001090"], cpus=1))
    tokens = mibig_domains.ordered_domains(hits, proteins)["BGC0001090"]
    by_protein = hits.groupby("seq_id")["pfam"].apply(list)
    assert tokens == [t for key in proteins["BGC0001090"] for t in by_protein.get(key, [])]
    assert {"PF00501", "PF00109"} <= set(tokens)  # A-domain and KS: NRP and Polyketide evidence
    counts = mibig_domains.domain_counts({"BGC0001090": tokens})
    assert list(counts.columns) == ["bgc_id", "pfam", "count"]
    assert counts["count"].sum() == len(tokens)


def test_class_mapping_and_bad_records(tmp_path: Path, facts) -> None:
    smiles = facts["smiles"][HALOGENATED]
    row, rows = mibig_release.parse_json_record(
        {
            "cluster": {
                "mibig_accession": "BGC0000002",
                "biosyn_class": ["Other"],
                "compounds": [{"compound": "bad", "chem_struct": "C1CC(("}],
            }
        },
        "memory",
    )
    assert row["classes"] == "Other" and row["Other"] and row["labelled"]
    assert rows[0]["has_halogen"] is None  # unparsable SMILES: missing, not guessed
    bad = {
        "no accession": ({"cluster": {"biosyn_class": ["NRP"]}}, "mibig_accession"),
        "unknown class": (
            {"cluster": {"mibig_accession": "BGC0000003", "biosyn_class": ["Lipid"]}},
            "MIBIG_CLASSES",
        ),
        "empty SMILES": (
            {
                "cluster": {
                    "mibig_accession": "BGC0000004",
                    "biosyn_class": ["NRP"],
                    "compounds": [{"compound": "x", "chem_struct": ""}],
                }
            },
            "chem_struct",
        ),
    }
    for label, (record, needle) in bad.items():
        with pytest.raises(mibig_release.MibigFormatError, match=needle):
            mibig_release.parse_json_record(record, label)
    renamed = tarball(
        tmp_path / "renamed.tar.gz",
        "mibig_json_3.1",
        {"BGC0000009.json": json_record("BGC0000001", ["NRP"], [{"chem_struct": smiles}])},
    )
    with pytest.raises(
        mibig_release.MibigFormatError,
        match=r"renamed.tar.gz:mibig_json_3.1/BGC0000009.json holds "
        r"BGC0000001.*Fix: delete",
    ):
        mibig_release.read_json_release(renamed)
    gbk = sources.pyhmmer_file("BGC0001090.gbk").read_text()
    translation = r'(/protein_id="ABS74178\.1"\n\s+/transl_table=11\n)\s+/translation="[^"]*"\n'
    untranslated, removed = re.subn(translation, r"\1", gbk)
    assert removed == 1
    broken = tarball(
        tmp_path / "gbk.tar.gz", "mibig_gbk_3.1", {"BGC0001090.gbk": untranslated.encode()}
    )
    with pytest.raises(
        mibig_release.MibigFormatError,
        match=r"BGC0001090.gbk: CDS ABS74178.1 .* has no /translation",
    ):
        mibig_release.read_genbank_release(broken)
    (tmp_path / "not.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(mibig_release.MibigFormatError, match="not a readable tar archive"):
        mibig_release.read_json_release(tmp_path / "not.tar.gz")
