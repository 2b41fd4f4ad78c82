"""A training run's folder: what is written per epoch, how a run is resumed and read back.

Layout of ``out_dir``: ``run.json`` (configuration, init mode, seed; a resumed run's
configuration, such as more epochs, replaces the stored one), ``vocab.json``,
``history.csv``, ``state.pt`` (the resumable state, written last: the commit point) and per
epoch k (0 = the initialisation) ``token_table_e{k}.npy`` and ``model_e{k}.pt``.

Which epoch is "the trained model" is a rule (:data:`CHECKPOINT_RULES`, the profile's
``bigcarp.checkpoint``) applied to the stored history when the run is read, not when it is
trained: the same run serves either rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch
from sequence_models.convolutional import ByteNetLM

from crossgran.cache import atomic_path, write_text_atomic
from crossgran.models.bigcarp.model import InitMode, build_model, token_table
from crossgran.models.bigcarp.vocab import Vocabulary
from crossgran.profiles import BigcarpConfig

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "valid_loss",
    "valid_masked_accuracy",
    "tokens_per_s",
    "wall_s",
)
STATE, RUN, VOCAB, HISTORY = "state.pt", "run.json", "vocab.json", "history.csv"
# "best": the epoch with the lowest held-out masked loss (the paper's choice); "last": the last
# completed epoch. Epoch 0 (the initialisation) is never chosen: it is the untrained control.
CheckpointRule = Literal["best", "last"]
CHECKPOINT_RULES: tuple[CheckpointRule, ...] = get_args(CheckpointRule)
# Configuration fields that change training but that run.json files written before the field
# existed do not record, with the value those runs were trained with (then hard-coded).
LEGACY_CONFIG = {"weight_decay": 0.01, "activation": "relu"}
# Configuration fields that do not change the trained weights: a stored run continues (and
# is reused) whatever they say. ``epochs``: more may be added; ``checkpoint``: read-time rule.
NOT_TRAINING = ("epochs", "checkpoint")
# Configuration fields compared through their effect, not their value: ``d_embedding`` (None:
# the ESM width) matters only as the width it resolves to, the record's own ``d_embedding``, so
# a run given that width explicitly and one that took it from the family vectors are one run.
RESOLVED = ("d_embedding",)

__all__ = [
    "CHECKPOINT_RULES",
    "HISTORY",
    "HISTORY_COLUMNS",
    "LEGACY_CONFIG",
    "NOT_TRAINING",
    "RESOLVED",
    "RUN",
    "STATE",
    "VOCAB",
    "CheckpointRule",
    "TrainedRun",
    "chosen_epoch",
    "clear_run",
    "history_frame",
    "load_checkpoint",
    "model_path",
    "run_record",
    "same_run",
    "selected_epoch",
    "stored_config",
    "table_path",
    "write_checkpoint",
]


def table_path(out_dir: Path, epoch: int) -> Path:
    return out_dir / f"token_table_e{epoch:03d}.npy"


def model_path(out_dir: Path, epoch: int) -> Path:
    return out_dir / f"model_e{epoch:03d}.pt"


def run_record(config: BigcarpConfig, init_mode: InitMode, seed: int, d_embedding: int) -> dict:
    """What ``run.json`` records about a run (plus the init report, on a fresh start)."""
    return {
        "config": asdict(config),
        "init_mode": init_mode,
        "seed": seed,
        "d_embedding": d_embedding,
    }


def stored_config(record: dict) -> dict:
    """The ``config`` of a run record, with :data:`LEGACY_CONFIG` filled in where a run.json
    written before those fields existed lacks them (so today's mini runs stay valid)."""
    return {**LEGACY_CONFIG, **record["config"]}


def same_run(stored: dict, current: dict) -> bool:
    """Everything that changes training must match to continue a run: the configuration but
    :data:`NOT_TRAINING` (more epochs may be added; the checkpoint rule is read-time) and
    :data:`RESOLVED`, the init mode, the seed and the table width."""

    def strip(record: dict) -> dict:
        config = {
            k: v for k, v in stored_config(record).items() if k not in (*NOT_TRAINING, *RESOLVED)
        }
        return {**{k: record.get(k) for k in current}, "config": config}

    return strip(stored) == strip(current)


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """The history rows as a frame with :data:`HISTORY_COLUMNS` (epoch int, the rest float)."""
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    return frame.astype({"epoch": int, **{c: float for c in HISTORY_COLUMNS[1:]}})


def write_checkpoint(
    out_dir: Path,
    epoch: int,
    model: ByteNetLM,
    optimizer: torch.optim.Optimizer | None,
    history: list[dict],
) -> None:
    """Per-epoch table and weights, then ``state.pt`` last: it is the commit point, so a run
    killed anywhere before it resumes from the previous epoch and rewrites these files.
    ``optimizer`` None: an imported checkpoint (:mod:`.official`), never trained further."""
    with atomic_path(table_path(out_dir, epoch)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, token_table(model).cpu().numpy())
    # torch.save gets file handles: given a path, it names the archive's folder after the
    # random temporary file, and identical weights would differ byte for byte between runs.
    with atomic_path(model_path(out_dir, epoch)) as tmp, open(tmp, "wb") as handle:
        torch.save(model.state_dict(), handle)
    write_text_atomic(out_dir / HISTORY, history_frame(history).to_csv(index=False))
    # No RNG state is stored: every draw of epoch k comes from stream_rng(seed, k, ...), so
    # the epoch number is the whole random state needed to continue exactly.
    with atomic_path(out_dir / STATE) as tmp, open(tmp, "wb") as handle:
        torch.save(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": None if optimizer is None else optimizer.state_dict(),
                "history": history,
            },
            handle,
        )


def clear_run(out_dir: Path) -> None:
    """Remove a previous run's files so a fresh run never mixes epochs with it."""
    for path in out_dir.glob("*"):
        if path.name in (STATE, RUN, VOCAB, HISTORY) or re.fullmatch(
            r"(token_table|model)_e\d{3}\.(npy|pt)", path.name
        ):
            path.unlink()


@dataclass
class TrainedRun:
    """A trained (or partly trained) run read back from its ``out_dir``."""

    model: ByteNetLM
    vocab: Vocabulary
    # Every completed epoch, also those after ``epoch``: a best checkpoint is read beside the
    # curve it was chosen from.
    history: pd.DataFrame
    epoch: int  # the checkpoint loaded into ``model`` (0 = the initialisation)
    init_mode: InitMode
    seed: int
    config: BigcarpConfig
    token_tables: dict[int, np.ndarray]  # epoch -> (n_tokens, d_embedding), 0 = init
    # An imported official checkpoint's ``official`` record in run.json (None: trained here;
    # see crossgran.models.bigcarp.official.import_official). Its epoch 1 is the released
    # weights, its epoch 0 this architecture initialised under ``seed``, not the released
    # run's own start (never published): a control for "untrained", not a measure of how far
    # training moved.
    official: dict | None = None


def chosen_epoch(history: pd.DataFrame, rule: CheckpointRule, where: str = "the run") -> int:
    """The epoch (>= 1) that ``rule`` picks from a history frame (:data:`HISTORY_COLUMNS`):
    ``best``, the lowest ``valid_loss`` (ties: the earliest epoch); ``last``, the last one."""
    if rule not in CHECKPOINT_RULES:
        raise ValueError(f"unknown checkpoint rule {rule!r}; choose one of {CHECKPOINT_RULES}")
    trained = history[history["epoch"] >= 1]
    if trained.empty:
        raise ValueError(
            f"{where} has no trained epoch (only the initialisation); train it first "
            "(notebook 02 or `crossgran train-bigcarp`)"
        )
    if rule == "last":
        return int(trained["epoch"].max())
    losses = trained.dropna(subset=["valid_loss"])
    if losses.empty:
        raise ValueError(
            f"{where} has no held-out loss (its corpus has no validation rows), so no best "
            "epoch; give the corpus a validation split or set bigcarp.checkpoint='last'"
        )
    ordered = losses.sort_values(["valid_loss", "epoch"], kind="stable")
    return int(ordered["epoch"].iloc[0])


def _committed_state(out_dir: Path) -> dict:
    """``state.pt``: the commit point, so its history, not ``history.csv`` (written just
    before it, and ahead of it after a kill in between), is what the run holds."""
    if not (out_dir / STATE).is_file():
        raise FileNotFoundError(f"{out_dir} has no {STATE}; train with `crossgran train-bigcarp`")
    return torch.load(out_dir / STATE, map_location="cpu", weights_only=True)


def selected_epoch(out_dir: Path | str, rule: CheckpointRule) -> int:
    """The epoch of the run in ``out_dir`` that ``rule`` names "the trained model" (see
    :func:`chosen_epoch`), from the history committed with its last checkpoint."""
    out_dir = Path(out_dir)
    return chosen_epoch(history_frame(_committed_state(out_dir)["history"]), rule, str(out_dir))


def load_checkpoint(out_dir: Path | str, epoch: int | CheckpointRule | None = None) -> TrainedRun:
    """The model after ``epoch`` in eval mode, with the vocabulary and, for every completed
    epoch, its history row and its token table. The epoch read is ``TrainedRun.epoch``.

    ``epoch``: a number (0 = the initialisation); a rule of :data:`CHECKPOINT_RULES` (pass
    the profile's ``bigcarp.checkpoint`` for what the notebooks read as the trained model;
    see :func:`chosen_epoch`); None, the last completed checkpoint, 0 included."""
    out_dir = Path(out_dir)
    state = _committed_state(out_dir)
    record = json.loads((out_dir / RUN).read_text())
    last = state["epoch"]
    history = history_frame(state["history"])
    if isinstance(epoch, str):
        epoch = chosen_epoch(history, epoch, str(out_dir))
    epoch = last if epoch is None else epoch
    if not 0 <= epoch <= last:
        raise ValueError(f"{out_dir} has epochs 0..{last}, not {epoch}")
    known = {f.name for f in BigcarpConfig.__dataclass_fields__.values()}
    config = BigcarpConfig(**{k: v for k, v in stored_config(record).items() if k in known})
    vocab = Vocabulary.load(out_dir / VOCAB)
    model = build_model(config, vocab, record["d_embedding"])
    model.load_state_dict(
        torch.load(model_path(out_dir, epoch), map_location="cpu", weights_only=True)
    )
    model.eval()
    tables = {k: np.load(table_path(out_dir, k)) for k in range(last + 1)}
    return TrainedRun(
        model,
        vocab,
        history,
        epoch,
        record["init_mode"],
        record["seed"],
        config,
        tables,
        record.get("official"),
    )
