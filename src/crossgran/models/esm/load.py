"""Loading ESM models from disk only, never the network.

``esm.pretrained`` downloads on a cache miss (and can hang without a network); here a
missing file is an error that says exactly which file to place where. Every loaded model is
named by content (``model_id``: name + short sha256 of the weights), because that name is
part of every embedding cache key.

A hub name is read from torch's hub cache, the one place of fair-esm's weights for the whole
project (:func:`crossgran.data.remote.remote_path`): a downloading profile's check asks for
them there and its table build fetches them there, hash-locked.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import esm
import torch
from esm.model.esm1 import ProteinBertModel
from esm.model.esm2 import ESM2

from crossgran.cache import sha256_file
from crossgran.data.remote import fair_esm_weights, hub_checkpoint_dir
from crossgran.session import torch_device

HUB_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"
HUB_MODELS = (
    "esm2_t6_8M_UR50D",
    "esm2_t12_35M_UR50D",
    "esm2_t30_150M_UR50D",
    "esm2_t33_650M_UR50D",
    "esm2_t36_3B_UR50D",
    "esm2_t48_15B_UR50D",
    "esm1b_t33_650M_UR50S",
)
LOCAL_PREFIX = "local:"

__all__ = [
    "HUB_MODELS",
    "HUB_URL",
    "LOCAL_PREFIX",
    "REGRESSION_URL",
    "LoadedEsm",
    "ModelFilesMissingError",
    "hub_checkpoint_dir",
    "load_esm",
    "local_model_dir",
    "new_local_model",
    "wrap_model",
]


class ModelFilesMissingError(FileNotFoundError):
    """A model's weights are not on disk; the message says which file goes where."""


@dataclass(frozen=True)
class LoadedEsm:
    """A ready-to-use ESM model and the facts the rest of the pipeline keys on.

    ``model_id`` names the weights by content (name + short sha256 of the weights file), so
    cached embeddings can never be attributed to a different checkpoint with the same name.
    ``max_positions`` counts BOS and EOS; sequences longer than ``max_positions - 2`` are
    embedded in overlapping windows (see :func:`crossgran.models.esm.embed`).
    """

    model: torch.nn.Module
    alphabet: esm.data.Alphabet
    batch_converter: esm.data.BatchConverter
    model_id: str
    num_layers: int
    embed_dim: int
    max_positions: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def local_model_dir(spec: str, models_dir: Path) -> Path:
    """The folder of a ``local:<name>`` model: ``models_dir/<name>``."""
    if not spec.startswith(LOCAL_PREFIX) or not spec[len(LOCAL_PREFIX) :]:
        raise ValueError(f"not a local model spec: {spec!r} (expected 'local:<name>')")
    return Path(models_dir) / spec[len(LOCAL_PREFIX) :]


def load_esm(
    spec: str, models_dir: Path | None = None, device: str | torch.device | None = None
) -> LoadedEsm:
    """Load an ESM model in eval mode, from disk only (never the network).

    ``spec`` is a fair-esm hub name (read from :func:`hub_checkpoint_dir`, torch's hub cache:
    see :func:`crossgran.data.remote.remote_path` for why there), a path to a
    fair-esm ``.pt`` checkpoint (a ``<stem>-contact-regression.pt`` beside it is optional:
    embeddings do not use the contact head), or ``local:<name>`` for a model made by
    :func:`crossgran.models.esm.train_local_esm` under ``models_dir``. ``device`` defaults
    to :func:`crossgran.session.torch_device` (CUDA when present), the one place that decides.
    """
    target = torch.device(device if device is not None else torch_device())
    if spec.startswith(LOCAL_PREFIX):
        if models_dir is None:
            raise ValueError(f"{spec!r} needs models_dir (the profile's models_dir)")
        loaded = _load_local(local_model_dir(spec, models_dir))
    elif spec in HUB_MODELS:
        loaded = _load_fair_esm_file(hub_checkpoint_dir() / f"{spec}.pt", hub_name=spec)
    elif spec.endswith(".pt"):
        loaded = _load_fair_esm_file(Path(spec), hub_name=None)
    else:
        raise ValueError(
            f"unknown ESM spec {spec!r}: use one of {', '.join(HUB_MODELS)}, "
            "a path to a fair-esm .pt file, or 'local:<name>'"
        )
    loaded.model.to(target)
    return loaded


def _load_fair_esm_file(path: Path, hub_name: str | None) -> LoadedEsm:
    if not path.is_file():
        name = hub_name or path.stem
        fetched = (
            "A downloading profile fetches it there, hash-locked, when it builds its tables "
            "(`crossgran data --profile full`, notebook 01).\n"
            if hub_name and fair_esm_weights(hub_name)
            else ""
        )
        raise ModelFilesMissingError(
            f"ESM weights not found: {path}\n"
            f"Loading a model never downloads. Place the file yourself:\n"
            f"  mkdir -p {path.parent}\n"
            f"  curl -L -o {path} {HUB_URL.format(name=name)}\n"
            f"{fetched}"
            f"(optional, only for contact prediction: "
            f"{path.parent / (path.stem + '-contact-regression.pt')} from "
            f"{REGRESSION_URL.format(name=name)})"
        )
    # fair-esm checkpoints pickle argparse/omegaconf objects, so weights_only loading (the
    # torch>=2.6 default, which breaks esm.pretrained.load_model_and_alphabet_local) cannot
    # read them; these are the publisher's files, which the user placed on purpose.
    model_data = torch.load(path, map_location="cpu", weights_only=False)
    regression_path = path.with_name(f"{path.stem}-contact-regression.pt")
    regression = (
        torch.load(regression_path, map_location="cpu", weights_only=False)
        if regression_path.is_file()
        else None
    )
    with warnings.catch_warnings():
        # Without the regression file only contact prediction is wrong; embeddings never use it.
        warnings.filterwarnings("ignore", message="Regression weights not found")
        model, alphabet = esm.pretrained.load_model_and_alphabet_core(
            path.stem, model_data, regression
        )
    return wrap_model(model, alphabet, f"{path.stem}@{sha256_file(path)[:12]}")


def _load_local(directory: Path) -> LoadedEsm:
    weights, config_path = directory / "model.pt", directory / "config.json"
    if not (weights.is_file() and config_path.is_file()):
        raise ModelFilesMissingError(
            f"local ESM model not found in {directory} (needs model.pt and config.json). "
            "Create it with crossgran.esm.train_local_esm (notebook 02 does this)."
        )
    config = json.loads(config_path.read_text())
    digest = sha256_file(weights)
    if digest != config["weights_sha256"]:
        raise ValueError(
            f"{weights} does not match the sha256 in {config_path}; delete the folder and retrain"
        )
    model = new_local_model(config["architecture"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return wrap_model(
        model,
        model.alphabet,
        f"local:{directory.name}@{digest[:12]}",
        max_positions=config["architecture"]["max_positions"],
    )


def new_local_model(architecture: Mapping[str, int]) -> ESM2:
    """An untrained ESM-2 of the local-model shape (``num_layers``, ``embed_dim``,
    ``attention_heads``), weights from the global torch RNG."""
    return ESM2(
        num_layers=architecture["num_layers"],
        embed_dim=architecture["embed_dim"],
        attention_heads=architecture["attention_heads"],
        alphabet="ESM-1b",
        token_dropout=True,
    )


def wrap_model(
    model: torch.nn.Module,
    alphabet: esm.data.Alphabet,
    model_id: str,
    max_positions: int | None = None,
) -> LoadedEsm:
    """Describe an in-memory fair-esm model (e.g. randomly initialised, for benchmarks).

    ``model_id`` must name the weights uniquely: it is part of every cache key. ESM-2 has no
    position table, so its ``max_positions`` defaults to 1024, the crop it was trained on.
    """
    if isinstance(model, ESM2):
        num_layers, embed_dim = model.num_layers, model.embed_dim
        default_positions = 1024
    elif isinstance(model, ProteinBertModel) and model.model_version == "ESM-1b":
        num_layers, embed_dim = model.num_layers, model.args.embed_dim
        default_positions = model.args.max_positions
    else:
        raise TypeError(
            f"unsupported ESM architecture {type(model).__name__}: "
            "crossgran.esm supports ESM-2 and ESM-1b"
        )
    model.eval()
    return LoadedEsm(
        model=model,
        alphabet=alphabet,
        batch_converter=alphabet.get_batch_converter(),
        model_id=model_id,
        num_layers=num_layers,
        embed_dim=embed_dim,
        max_positions=max_positions or default_positions,
    )
