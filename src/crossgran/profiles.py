"""Run profiles: every size, seed and path of a run in one frozen dataclass.

Why one place: the notebooks are executed headless by papermill with a single
``profile`` parameter, and a reviewer must be able to see in one file what
``smoke`` (CI speed), ``mini`` (offline default, stored notebook outputs, nbval),
``evidence`` (offline, about an hour on 2 cores: the largest models and the paper's probes
that fit; its committed outputs are the repository's offline evidence), ``full`` (the
paper's setting, GPU + network) and ``rehearsal`` (``full``'s code path at toy sizes, for CI)
change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

PROFILE_NAMES = ("smoke", "mini", "evidence", "full", "rehearsal")
DEFAULT_PROFILE = "mini"
AUTO = "auto"  # not a profile: crossgran.session resolves it from the machine
ROOT_ENV = "CROSSGRAN_ROOT"


@dataclass(frozen=True)
class EsmConfig:
    """Which ESM to use and, for ``local:`` models, how to pretrain it here."""

    spec: str  # fair-esm hub name, a .pt path, or "local:<name>"
    num_layers: int = 4
    embed_dim: int = 128
    attention_heads: int = 4
    train_steps: int = 250  # held-out loss is flat after ~200 steps at this size (notebook 02)
    train_batch_tokens: int = 4096
    train_max_len: int = 256  # random crops of this length during MLM pretraining
    lr: float = 1e-3
    valid_fraction: float = 0.05
    embed_batch_tokens: int | None = None  # None: chosen per device by crossgran.esm


@dataclass(frozen=True)
class BigcarpConfig:
    """ByteNet MLM sizes (the paper's: d_model 256, 32 layers, k 3, r 128, emb 1280)."""

    d_model: int = 64
    n_layers: int = 8
    kernel_size: int = 3
    r: int = 8
    d_embedding: int | None = None  # None: the ESM width (the paper ties it to ESM-1b, 1280)
    epochs: int = 4
    batch_size: int = 32
    max_len: int = 128  # domain tokens per training window
    lr: float = 1e-3
    # The paper trains with Adam and no weight decay, GELU activations (BiGCARP's released
    # configuration); the mini runs keep AdamW's decay and ReLU, which train faster at their size.
    weight_decay: float = 0.01
    activation: Literal["relu", "gelu"] = "relu"
    # Which checkpoint the notebooks read as "the trained model": the epoch with the lowest
    # held-out masked loss (the paper's choice), or the last one.
    checkpoint: Literal["best", "last"] = "best"
    mask_rate: float = 0.15
    n_orders: int = 4  # random orders averaged when embedding unordered (MIBiG bag) BGCs
    esm_layer: int = -1  # ESM layer whose family vectors initialise the token table
    # Seed of the training run (weights, masking, window order). Another seed is another
    # sample of the same experiment: benchmarks/variance.py trains several to measure how far
    # every reported number moves between runs (results/<profile>/training_spread.csv).
    seed: int = 0


@dataclass(frozen=True)
class SequenceProbeConfig:
    """Sizes and training of the BiLSTM product-class probe (defaults: the paper's; see
    :mod:`crossgran.analysis.probes.sequence`)."""

    hidden: int = 512  # per direction
    layers: int = 2
    dropout: float = 0.2
    lr: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 150
    patience: int = 10  # epochs without a lower held-out loss before stopping
    valid_fraction: float = 0.1  # of each training fold, held out for early stopping


@dataclass(frozen=True)
class Profile:
    """Everything a run depends on. Paths are derived from ``root``."""

    name: str
    root: Path
    seed: int = 0
    # Subset limits (None = everything). Subsets are deterministic: first N after sorting by id.
    max_nrps_proteins: int | None = None
    max_proteome_proteins: int | None = None
    max_bgcs: int | None = None
    max_adomains: int | None = None
    proteome_window: int = 40  # genes per window when cutting the proteome into pseudo-clusters
    valid_fraction: float = 0.1
    hmmer_cpus: int = 2
    # A fixed torch thread count makes stored outputs identical on any machine (reduction
    # order depends on the thread count, not on the cores present); 2 matches the reference
    # 2-core machine. Full runs use every core (None = torch's default).
    torch_threads: int | None = 2
    # Probe fits (seed x fold) run in this many processes, each with one BLAS thread.
    probe_jobs: int = 2
    esm: EsmConfig = field(default_factory=lambda: EsmConfig(spec="local:esm2_mini"))
    bigcarp: BigcarpConfig = field(default_factory=BigcarpConfig)
    # The random-init BiGCARP run: False, trained here like the ESM-init runs; True, the
    # released checkpoint (bigcarp_random, downloaded) imported instead, as the paper used it.
    # The ESM-init runs are trained here either way: the paper retrained them.
    bigcarp_official_random: bool = False
    probe_folds: int = 5
    probe_seeds: int = 3
    n_bootstrap: int = 1000
    # Where Pfam and MIBiG come from: False = the pinned wheels (offline); True = Pfam-A and the
    # MIBiG release, downloaded and hash-locked (they also bring the compound structures that
    # the halogenation task needs).
    downloads: bool = False
    # Probe on raw Pfam-domain counts: a random forest where thousands of BGCs make it
    # worthwhile (the paper's baseline), logistic regression on the small offline sets.
    count_probe_model: Literal["logreg", "rf"] = "logreg"
    # The paper's probes beside the linear one: MLP (512, 256) on A-domain properties and on
    # pooled product-class vectors, MLP (512, 128) for halogenation, a BiLSTM over gene-ordered
    # per-domain vectors for product class (only where sentences are gene-ordered). Costly on
    # 2 cores, so mini keeps the linear probe alone.
    paper_probes: bool = False
    # Where the paper's probes cost more than the profile's budget: the CV seeds they get
    # (None: probe_seeds) and the A-domain properties they run on (None: all six).
    paper_probe_seeds: int | None = None
    paper_probe_properties: tuple[str, ...] | None = None
    # The BiLSTM product-class probe (run where MIBiG sentences are gene-ordered): the paper's
    # sizes, smaller only where a profile must run on a CPU in minutes (rehearsal).
    sequence_probe: SequenceProbeConfig = field(default_factory=SequenceProbeConfig)
    # The default profile's outputs are committed: its manifest (data/MANIFEST.json, so a rerun
    # that changes a table shows in git diff) and its executed notebooks (what nbval checks,
    # so `crossgran run` replaces them in place). Other profiles keep both beside their results.
    outputs_committed: bool = False

    @property
    def raw_dir(self) -> Path:
        """Downloads shared by all profiles (pinned and hash-checked, so sharing is safe)."""
        return self.root / "data" / "raw"

    @property
    def processed_dir(self) -> Path:
        return self.root / "data" / "processed" / self.name

    @property
    def cache_dir(self) -> Path:
        return self.root / "data" / "cache"

    @property
    def models_dir(self) -> Path:
        return self.root / "data" / "models" / self.name

    @property
    def results_dir(self) -> Path:
        return self.root / "results" / self.name

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures" / self.name

    @property
    def manifest_path(self) -> Path:
        """See ``outputs_committed``."""
        if self.outputs_committed:
            return self.root / "data" / "MANIFEST.json"
        return self.processed_dir / "MANIFEST.json"

    def make_dirs(self) -> None:
        for path in (
            self.raw_dir,
            self.processed_dir,
            self.cache_dir,
            self.models_dir,
            self.results_dir,
            self.figures_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)


def find_root(start: Path | None = None) -> Path:
    """The project root: ``$CROSSGRAN_ROOT``, else the nearest parent holding ``pyproject.toml``
    and ``notebooks/`` (notebooks run with their own folder as working directory), else cwd."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    return here


def _smoke(root: Path) -> Profile:
    return Profile(
        name="smoke",
        root=root,
        max_nrps_proteins=120,
        max_proteome_proteins=200,
        max_bgcs=300,
        max_adomains=300,
        esm=EsmConfig(
            spec="local:esm2_smoke",
            num_layers=2,
            embed_dim=64,
            attention_heads=4,
            train_steps=30,
            train_batch_tokens=2048,
        ),
        bigcarp=BigcarpConfig(d_model=32, n_layers=4, r=4, epochs=1, n_orders=2),
        probe_folds=3,
        probe_seeds=1,
        n_bootstrap=200,
    )


def _mini(root: Path) -> Profile:
    return Profile(name="mini", root=root, outputs_committed=True)


def _evidence(root: Path) -> Profile:
    """mini's data with the largest models and the paper's probes that fit about an hour on 2
    cores. BiGCARP keeps lr 1e-3 with plain Adam (no decay) and GELU: at mini size the
    paper's lr 1e-4 still had a higher held-out loss after 10 epochs (4.31) than lr 1e-3 after
    2 (4.18), and a budget of about an hour cannot wait for it (measured, issue 14's note).

    Sizes were cut from a first cold run that took 3 h 10 min (results of 2026-11-29, issue
    14's note): ESM 1,400 steps (30 min; held-out perplexity 13.90 at step 560, 13.73 at
    840, 13.57 at 1,400), BiGCARP 20 epochs (32 min for three runs; held-out loss of the
    random-init run 3.81 at epoch 8, 3.60 at 20; mini's 4.00) and 10 linear-probe seeds
    (the A-domain probes alone took 58 min)."""
    return Profile(
        name="evidence",
        root=root,
        # Wider ESMs did worse in the same ~9 minutes (held-out perplexity 6 x 192, 425 steps:
        # 13.82; 6 x 256, 215 steps: 14.10; 4 x 128: 13.57 after 1,400 steps, unigram 17.15)
        # and embed 3-6x slower; lr 2e-3 or 4e-3 did not help (issue 14's note).
        esm=EsmConfig(spec="local:esm2_evidence", train_steps=700),
        bigcarp=BigcarpConfig(
            d_model=128,
            n_layers=16,
            r=64,
            epochs=8,
            weight_decay=0.0,
            activation="gelu",
            checkpoint="best",
        ),
        paper_probes=True,
        # 10 seeds x 5 folds of the MLP on every A-domain feature set and property would take
        # ~4 h on 2 cores (~5 s a fit, 4,700 fits): the MLP gets 3 seeds and the two
        # properties the paper reports. The linear probe, not the paper's, keeps mini's 3.
        paper_probe_seeds=3,
        paper_probe_properties=("is_aromatic", "has_heterocycle"),
        probe_seeds=3,
        n_bootstrap=2000,
    )


def _full(root: Path) -> Profile:
    return Profile(
        name="full",
        root=root,
        torch_threads=None,
        downloads=True,
        count_probe_model="rf",
        hmmer_cpus=0,  # pyhmmer: 0 = every core (all of MIBiG x ~19,600 Pfam-A HMMs)
        esm=EsmConfig(
            spec="esm1b_t33_650M_UR50S",
            num_layers=33,
            embed_dim=1280,
            attention_heads=20,
            train_steps=0,
        ),
        bigcarp=BigcarpConfig(
            d_model=256,
            n_layers=32,
            kernel_size=3,
            r=128,
            d_embedding=1280,
            epochs=50,
            batch_size=64,
            max_len=512,
            lr=1e-4,
            weight_decay=0.0,
            activation="gelu",
            n_orders=8,
        ),
        bigcarp_official_random=True,
        paper_probes=True,
        probe_folds=5,
        probe_seeds=10,
        n_bootstrap=10_000,
    )


def _rehearsal(root: Path) -> Profile:
    """``full`` at toy sizes: it exists so that CI can run full's code path end to end on a
    2-core CPU (downloads through ``$CROSSGRAN_MIRROR``, hash lock, hub-cache ESM weights,
    gene-ordered MIBiG sentences, halogenation, the paper's probes, the imported official
    random-init BiGCARP), served stand-in inputs (``tests/standins.py``). Its numbers mean
    nothing.

    Only sizes differ from ``full``: the ESM spec is full's (a tiny fair-esm ESM-1b is served
    under that name, so ``esm`` gives its architecture), and ``bigcarp`` is the network of the
    stand-in official checkpoint, which the import requires. Run it only in a scratch project
    root with ``$TORCH_HOME`` pointing at a scratch folder: the stand-ins carry the real files'
    names, and a run puts them where ``full`` reads the real ones (``data/raw``, the lock, the
    hub cache).
    """
    full = _full(root)
    return replace(
        full,
        name="rehearsal",
        # 60 NRPS proteins (117 A-domains) leave every A-domain property three parent proteins
        # in its rarer class, one per fold (is_Val has exactly three; 50 leave it two, too few
        # for 3 grouped folds, so the probe would skip it).
        max_nrps_proteins=60,
        max_proteome_proteins=200,
        # One torch thread: the networks are tiny, and two OpenMP threads on a loaded 2-core
        # machine spin waiting for each other (the tests hold one thread for the same reason).
        torch_threads=1,
        hmmer_cpus=2,
        esm=replace(full.esm, num_layers=2, embed_dim=32, attention_heads=4),
        bigcarp=replace(
            full.bigcarp,
            d_model=32,
            n_layers=4,
            r=4,
            d_embedding=32,
            epochs=2,
            batch_size=32,
            max_len=128,
            n_orders=2,
        ),
        probe_folds=3,
        probe_seeds=1,
        paper_probe_seeds=1,
        # The MLP on every A-domain property would be most of the run; the two the paper reports.
        paper_probe_properties=("is_aromatic", "has_heterocycle"),
        # The paper's BiLSTM (2 x 512, up to 150 epochs) would take hours on 2 cores here.
        sequence_probe=replace(full.sequence_probe, hidden=16, max_epochs=3),
        n_bootstrap=200,
    )


_BUILDERS = {
    "smoke": _smoke,
    "mini": _mini,
    "evidence": _evidence,
    "full": _full,
    "rehearsal": _rehearsal,
}


def get_profile(
    name: str = DEFAULT_PROFILE, root: Path | str | None = None, **overrides
) -> Profile:
    """The named profile rooted at ``root`` (default: :func:`find_root`), with field overrides.
    (``"auto"`` is resolved by :func:`crossgran.session.prepare`, which may probe the network.)"""
    if name not in _BUILDERS:
        raise ValueError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} or {AUTO!r}"
        )
    profile = _BUILDERS[name](Path(root).resolve() if root else find_root())
    return replace(profile, **overrides) if overrides else profile
