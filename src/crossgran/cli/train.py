"""``crossgran train-bigcarp``: train one BiGCARP initialisation on a profile's domain corpus."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from crossgran.cli.common import UserError, add_profile_option
from crossgran.profiles import BigcarpConfig, Profile


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
        help=".npz with `families` and `vectors` (ESM per-family vectors) for the esm inits "
        "(default: the profile's, <processed_dir>/esm_family_vectors.npz, which notebook 02 "
        "writes); a random init without them gets the profile's ESM width, as in the notebooks",
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--seed", type=int, default=None, help="default: the profile's BiGCARP training seed"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: the run the notebooks read, <models_dir>/bigcarp_<init>; with a --seed "
        "other than the profile's, <models_dir>/bigcarp_<init>_seed<seed>, since another seed "
        "is another sample of the experiment and must not replace the notebooks' run",
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


def default_out(profile: Profile, init: str, seed: int) -> Path:
    """Where a run goes without ``--out``: the profile's own seed trains the run the notebooks
    read (:func:`crossgran.models.runs.bigcarp_run_dir`), so a model trained from the command
    line is the one they use; another seed is another sample and gets a folder of its own."""
    from crossgran.models.runs import bigcarp_run_dir

    if seed == profile.bigcarp.seed:
        return bigcarp_run_dir(profile, init)
    return profile.models_dir / f"bigcarp_{init}_seed{seed}"


def _family_vectors(args: argparse.Namespace, profile: Profile) -> Path | None:
    """``--family-vectors``, else the profile's when notebook 02 has written them, else None."""
    from crossgran.models.runs import family_vectors_path

    stored = family_vectors_path(profile)
    return args.family_vectors or (stored if stored.is_file() else None)


def _without_vectors(init: str, config: BigcarpConfig, profile: Profile) -> BigcarpConfig:
    """The configuration of a run without family vectors: an ESM init cannot start; a random
    one gets the width the notebooks' random run takes from the vectors, the profile's ESM
    width, so that it is the same run as theirs and notebook 02 continues it."""
    from crossgran.models.runs import family_vectors_path

    if init != "random":
        raise UserError(
            f"--init {init} starts from ESM family vectors: pass --family-vectors, or run "
            f"notebook 02 of profile {profile.name!r}, which writes {family_vectors_path(profile)}"
        )
    if config.d_embedding is not None:
        return config
    return replace(config, d_embedding=profile.esm.embed_dim)


def handle(args: argparse.Namespace) -> int:
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
    out = args.out or default_out(profile, args.init, seed)
    vectors_path = _family_vectors(args, profile)
    vectors = load_family_vectors(vectors_path) if vectors_path else None
    if vectors is None:
        config = _without_vectors(args.init, config, profile)
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
