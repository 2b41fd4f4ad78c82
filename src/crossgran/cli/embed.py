"""``crossgran embed``: mean-pooled ESM embeddings of a FASTA file, per requested layer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossgran.cli.common import UserError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("embed", help="mean-pooled ESM embeddings of a FASTA file")
    parser.add_argument("--fasta", required=True, type=Path)
    parser.add_argument(
        "--model", required=True, help="fair-esm hub name, path to a .pt file, or local:<name>"
    )
    parser.add_argument(
        "--layers",
        required=True,
        type=int,
        nargs="+",
        help="layer numbers, 0 = token embeddings, -1 = last",
    )
    parser.add_argument("--out", required=True, type=Path, help="output .npz")
    parser.add_argument("--models-dir", type=Path, default=None, help="folder of local: models")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="reuse/store per-sequence results here (default: no cache)",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help="padded tokens per batch (default: chosen per device)",
    )
    parser.set_defaults(handler=handle)


def read_records(path: Path) -> dict[str, str]:
    """The FASTA records, checked before the (slow) model load: a file that is not FASTA or
    a residue ESM cannot read is reported first, naming every bad record."""
    from crossgran.data.readers import read_fasta
    from crossgran.models.esm import clean_all

    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a protein FASTA file")
    records = read_fasta(path)
    clean_all(records)
    return records


def handle(args: argparse.Namespace) -> int:
    from crossgran.cache import ArrayCache
    from crossgran.models.esm import embed, load_esm

    records = read_records(args.fasta)
    model = load_esm(args.model, args.models_dir)
    result = embed(
        records,
        model,
        args.layers,
        cache=ArrayCache(args.cache_dir) if args.cache_dir else None,
        batch_tokens=args.batch_tokens,
        progress=True,
    )
    result.save(args.out)
    stats = result.stats
    print(
        f"{stats['n_sequences']} sequences ({stats['n_cached']} cached), "
        f"{stats['residues']:.0f} residues in {stats['seconds']:.1f} s: "
        f"{stats['residues_per_second']:.0f} residues/s -> {args.out}",
        file=sys.stderr,
    )
    return 0
