"""``crossgran train-bigcarp``: train one BiGCARP initialisation on a profile's domain corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from crossgran.cli.common import UserError, add_profile_option


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train-bigcarp", help="train the BiGCARP masked LM on Pfam tokens")
    add_profile_option(parser)
    parser.add_argument(
        "--init",
        required=True,
        metavar="MODE",
        help="token-table initialisation: random, esm or esm-frozen",
    )
    parser.add_argument(
        "--family-vectors",
        type=Path,
        default=None,
        help=".npz with `families` and `vectors` (ESM per-family vectors); "
        "needed for esm inits, and for random to match their table width",
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--seed", type=int, default=None, help="default: the profile's BiGCARP training seed"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default: <models_dir>/bigcarp_<init>_seed<seed>"
    )
    parser.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads; 1 is often fastest for the small profiles on a "
        "busy machine, where OpenMP threads spin waiting for each other",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from crossgran import threads
    from crossgran.data.tables import load_table
    from crossgran.models.bigcarp import (
        INIT_MODES,
        Vocabulary,
        chosen_epoch,
        load_family_vectors,
        train_mlm,
    )
    from crossgran.profiles import get_profile

    if args.init not in INIT_MODES:
        raise UserError(f"unknown --init {args.init!r}; choose one of {', '.join(INIT_MODES)}")
    profile = get_profile(args.profile)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v is not None}
    config = replace(profile.bigcarp, **overrides)
    seed = profile.bigcarp.seed if args.seed is None else args.seed
    out = args.out or profile.models_dir / f"bigcarp_{args.init}_seed{seed}"
    vectors = load_family_vectors(args.family_vectors) if args.family_vectors else None
    corpus = load_table(profile, "domain_corpus")
    with threads.limit(torch_threads=args.threads):
        history = train_mlm(
            corpus,
            Vocabulary.from_corpus(corpus),
            config,
            init_mode=args.init,
            family_vectors=vectors,
            out_dir=out,
            seed=seed,
            resume=not args.restart,
            progress=True,
        )
    for row in history.itertuples():
        print(
            f"epoch {row.epoch}: train {row.train_loss:.3f}  valid {row.valid_loss:.3f}  "
            f"acc {row.valid_masked_accuracy:.3f}  {row.tokens_per_s:,.0f} tokens/s"
        )
    selected = chosen_epoch(history, config.checkpoint, str(out))
    print(f"checkpoints in {out}; the profile's {config.checkpoint!r} rule reads epoch {selected}")
    return 0
