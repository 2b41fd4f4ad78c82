"""Sequences to tokens to hidden states: the ESM forward pass, run by this package itself.

Why not fair-esm's ``model(tokens, repr_layers=...)``: it always runs every layer and
materialises head-averaged attention maps. :func:`hidden_states` yields every layer from one
pass that stops after the deepest requested one, with PyTorch's fused attention, and the same
code serves embedding (:mod:`.embed`) and local pretraining (:mod:`.pretrain`), so the
pretrained model is trained through exactly the forward it is later embedded with.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import esm
import numpy as np
import torch
import torch.nn.functional as F
from esm.model.esm1 import ProteinBertModel
from esm.model.esm2 import ESM2

STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
ALLOWED_RESIDUES = frozenset(STANDARD_AMINO_ACIDS + "XBZUO")

__all__ = [
    "ALLOWED_RESIDUES",
    "STANDARD_AMINO_ACIDS",
    "clean_all",
    "clean_sequence",
    "hidden_states",
    "mlm_logits",
    "token_table",
    "tokenize",
]


# --------------------------------------------------------------------------- sequences


def clean_sequence(record_id: str, sequence: str) -> str:
    """Upper-case ``sequence`` and drop one terminal ``*``; reject anything else odd.

    Case carries no meaning for the ESM alphabet (it only has upper-case letters; lower case
    in FASTA files marks masking or insert states, not different residues), and a trailing
    ``*`` is the stop codon of translated CDSs. Gaps, digits, inner stops and empty records
    mean the input is not a protein sequence, so they fail loudly instead of being mapped
    to ``<unk>``.
    """
    cleaned = sequence.strip().upper()
    cleaned = cleaned.removesuffix("*")
    if not cleaned:
        raise ValueError(f"record {record_id!r}: empty sequence")
    bad = sorted(set(cleaned) - ALLOWED_RESIDUES)
    if bad:
        raise ValueError(
            f"record {record_id!r}: characters that are not amino acids: "
            f"{''.join(bad)!r} (allowed: 20 standard + X B Z U O)"
        )
    return cleaned


def clean_all(sequences: Mapping[str, str]) -> dict[str, str]:
    """Validate every record and report all bad ones at once (fixing one at a time is slow)."""
    cleaned: dict[str, str] = {}
    problems: list[str] = []
    for record_id, sequence in sequences.items():
        try:
            cleaned[record_id] = clean_sequence(record_id, sequence)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError(f"{len(problems)} invalid sequence record(s):\n  {shown}{more}")
    return cleaned


def token_table(alphabet: esm.data.Alphabet) -> np.ndarray:
    """Byte -> token id lookup (256 entries; anything but an allowed residue is ``<unk>``)."""
    table = np.full(256, alphabet.unk_idx, dtype=np.int64)
    for residue in ALLOWED_RESIDUES:
        table[ord(residue)] = alphabet.get_idx(residue)
    return table


def tokenize(pieces: Sequence[str], alphabet: esm.data.Alphabet, table: np.ndarray) -> torch.Tensor:
    """BOS + residues + EOS, right-padded; same tokens as fair-esm's BatchConverter, faster."""
    width = max(len(piece) for piece in pieces) + 2
    tokens = np.full((len(pieces), width), alphabet.padding_idx, dtype=np.int64)
    for row, piece in enumerate(pieces):
        tokens[row, 0] = alphabet.cls_idx
        tokens[row, 1 : len(piece) + 1] = table[
            np.frombuffer(piece.encode("ascii"), dtype=np.uint8)
        ]
        tokens[row, len(piece) + 1] = alphabet.eos_idx
    return torch.from_numpy(tokens)


# --------------------------------------------------------------------------- forward pass


def _embed_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Token (and, for ESM-1b, learned position) embeddings exactly as fair-esm computes them."""
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    token_dropout = (
        model.token_dropout
        if isinstance(model, ESM2)
        else getattr(model.args, "token_dropout", False)
    )
    if token_dropout:
        masked = tokens.eq(model.mask_idx)
        x = x.masked_fill(masked.unsqueeze(-1), 0.0)
        observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
        # fair-esm's constant: the share of masked inputs in its training (15% x 80%).
        x = x * (1 - 0.15 * 0.8) / (1 - observed)[:, None, None]
    if isinstance(model, ProteinBertModel):
        x = x + model.embed_positions(tokens)
        if model.emb_layer_norm_before:
            x = model.emb_layer_norm_before(x)
    return x * (~padding).unsqueeze(-1).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def _transformer_layer(
    layer: torch.nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None,
    rotary: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """fair-esm's pre-LN ``TransformerLayer`` in (B, T, E) layout with fused attention.

    fair-esm's own attention always materialises and head-averages the attention map (its
    layers pass ``need_weights=True``); ``scaled_dot_product_attention`` skips that.
    """
    attention = layer.self_attn
    batch, length, width = x.shape
    heads = attention.num_heads
    hidden = layer.self_attn_layer_norm(x)

    def split(projection: torch.nn.Linear) -> torch.Tensor:
        return projection(hidden).view(batch, length, heads, width // heads).transpose(1, 2)

    q, k, v = split(attention.q_proj), split(attention.k_proj), split(attention.v_proj)
    if rotary is not None:
        cos, sin = rotary
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
    mixed = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=attention.dropout if layer.training else 0.0
    )
    x = x + attention.out_proj(mixed.transpose(1, 2).reshape(batch, length, width))
    return x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))


def _rotary(model: ESM2, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ESM-2's rotary position tables (cos, sin) for ``tokens``' length."""
    inv_freq = model.layers[0].self_attn.rot_emb.inv_freq
    steps = torch.arange(tokens.shape[1], device=tokens.device).type_as(inv_freq)
    angles = torch.outer(steps, inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return (
        angles.cos().to(model.embed_tokens.weight.dtype),
        angles.sin().to(model.embed_tokens.weight.dtype),
    )


def hidden_states(
    model: torch.nn.Module, tokens: torch.Tensor, last_layer: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (layer, (B, T, E) hidden state) for layers 0..last_layer, then stop.

    Stopping early is the point: asking for layers 0 and 6 of a 33-layer model costs 6
    layers. As in fair-esm, the model's final layer gets the closing layer norm.
    """
    for module in model.layers[:last_layer]:
        if module.self_attn.bias_k is not None:
            raise TypeError("ESM-1 style attention with bias_kv is not supported")
    padding = tokens.eq(model.padding_idx)
    attn_mask = (~padding)[:, None, None, :] if padding.any() else None
    rotary = _rotary(model, tokens) if isinstance(model, ESM2) else None
    x = _embed_tokens(model, tokens)
    yield 0, x
    num_layers = len(model.layers)
    for index in range(last_layer):
        x = _transformer_layer(model.layers[index], x, attn_mask, rotary)
        yield index + 1, (model.emb_layer_norm_after(x) if index + 1 == num_layers else x)


def mlm_logits(model: ESM2, tokens: torch.Tensor) -> torch.Tensor:
    """All layers, final layer norm, LM head: the pretraining forward, through the same code."""
    *_, (_, x) = hidden_states(model, tokens, len(model.layers))
    return model.lm_head(x)
