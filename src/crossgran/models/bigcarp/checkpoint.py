"""A training run's folder: what is written per epoch, how a run is resumed and read back.

Layout of ``out_dir``: ``run.json`` (configuration, init mode, seed), ``vocab.json``,
``history.csv``, ``state.pt`` (the resumable state, written last: the commit point) and per
epoch k (0 = the initialisation) ``token_table_e{k}.npy`` and ``model_e{k}.pt``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

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

__all__ = [
    "HISTORY",
    "HISTORY_COLUMNS",
    "RUN",
    "STATE",
    "VOCAB",
    "TrainedRun",
    "clear_run",
    "history_frame",
    "load_checkpoint",
    "model_path",
    "run_record",
    "same_run",
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


def same_run(stored: dict, current: dict) -> bool:
    """Everything but the epoch count must match to continue a run (more epochs may be added)."""

    def strip(record: dict) -> dict:
        config = {k: v for k, v in record["config"].items() if k != "epochs"}
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
    optimizer: torch.optim.Optimizer,
    history: list[dict],
) -> None:
    """Per-epoch table and weights, then ``state.pt`` last: it is the commit point, so a run
    killed anywhere before it resumes from the previous epoch and rewrites these files."""
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
                "optimizer": optimizer.state_dict(),
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
    history: pd.DataFrame
    epoch: int
    init_mode: InitMode
    seed: int
    config: BigcarpConfig
    token_tables: dict[int, np.ndarray]  # epoch -> (n_tokens, d_embedding), 0 = init


def load_checkpoint(out_dir: Path | str, epoch: int | None = None) -> TrainedRun:
    """The model after ``epoch`` (default: the last completed), in eval mode, with the
    vocabulary, the history up to that epoch and the token table of every completed epoch."""
    out_dir = Path(out_dir)
    if not (out_dir / STATE).is_file():
        raise FileNotFoundError(f"{out_dir} has no {STATE}; train with `crossgran train-bigcarp`")
    record = json.loads((out_dir / RUN).read_text())
    state = torch.load(out_dir / STATE, map_location="cpu", weights_only=True)
    last = state["epoch"]
    epoch = last if epoch is None else epoch
    if not 0 <= epoch <= last:
        raise ValueError(f"{out_dir} has epochs 0..{last}, not {epoch}")
    known = {f.name for f in BigcarpConfig.__dataclass_fields__.values()}
    config = BigcarpConfig(**{k: v for k, v in record["config"].items() if k in known})
    vocab = Vocabulary.load(out_dir / VOCAB)
    model = build_model(config, vocab, record["d_embedding"])
    model.load_state_dict(
        torch.load(model_path(out_dir, epoch), map_location="cpu", weights_only=True)
    )
    model.eval()
    history = history_frame([row for row in state["history"] if row["epoch"] <= epoch])
    tables = {k: np.load(table_path(out_dir, k)) for k in range(last + 1)}
    return TrainedRun(
        model, vocab, history, epoch, record["init_mode"], record["seed"], config, tables
    )
