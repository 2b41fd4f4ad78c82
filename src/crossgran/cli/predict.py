"""``crossgran predict`` (a user's BGCs in, product-class and A-domain predictions out) and
``crossgran train-predictor`` (build or rebuild the probes it serves)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossgran.cli.common import add_profile_option


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict",
        help="predict the product class of your own BGCs (GenBank or protein FASTA)",
        description="Annotate Pfam domains, embed them with ESM and BiGCARP, and predict each "
        "record's MIBiG product class from either granularity and from both fused; predict "
        "substrate properties of every NRPS A-domain found.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="GenBank (antiSMASH region, MIBiG entry, any record with CDS features or a "
        "nucleotide sequence) or protein FASTA in gene order; several files and records allowed",
    )
    add_profile_option(parser)
    parser.add_argument(
        "--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)"
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the per-record figures")
    parser.set_defaults(handler=handle_predict)

    train = commands.add_parser(
        "train-predictor",
        help="(re)build the probes `crossgran predict` serves, from the profile's models",
    )
    add_profile_option(train)
    train.set_defaults(handler=handle_train)


def _print_record(prediction) -> None:
    record = prediction.record
    print(
        f"\n{record.name}  ({record.source}; genes: {record.gene_source}; "
        f"{len(record.proteins)} proteins, {len(prediction.domains)} Pfam domains, "
        f"{prediction.out_of_vocabulary:.0%} outside BiGCARP's vocabulary)"
    )
    for line in [*record.notes, *(f"WARNING: {w}" for w in prediction.warnings)]:
        print(f"  {line}")
    table = prediction.classes.set_index("class").sort_values("fused", ascending=False)
    print(f"  top class (fused): {prediction.top_class}")
    print("  " + table.round(3).to_string().replace("\n", "\n  "))
    if len(prediction.adomains):
        print(f"  {len(prediction.adomains)} A-domain(s), P(substrate property):")
        shown = prediction.adomains.drop(columns=["token_index"]).round(3)
        print("  " + shown.to_string(index=False).replace("\n", "\n  "))
    else:
        print("  no NRPS A-domain (AMP-binding, PF00501) found")


def handle_predict(args: argparse.Namespace) -> int:
    from crossgran.predict import calibration_note, predict_files, predictor_path
    from crossgran.profiles import get_profile

    settings = get_profile(args.profile)
    result = predict_files(
        settings, args.inputs, args.out, figures=not args.no_figures, progress=True
    )
    if result.built_predictor:
        print(f"built the probes from profile {settings.name!r}: {predictor_path(settings)}")
    for prediction in result.records:
        _print_record(prediction)
    print(f"\n{calibration_note(result.predictor)}")
    print(f"\nwritten: {', '.join(str(path) for path in result.files)}", file=sys.stderr)
    return 0


def handle_train(args: argparse.Namespace) -> int:
    from crossgran.predict import predictor_path, save_predictor, train_predictor
    from crossgran.profiles import get_profile

    settings = get_profile(args.profile)
    predictor = train_predictor(settings)
    path = predictor_path(settings)
    save_predictor(predictor, path)
    for name, values in predictor.calibration.items():
        print(
            f"{name}: held-out macro-F1 {values['macro_f1']:.3f}, Brier {values['brier']:.3f} "
            f"(base rate {values['brier_base_rate']:.3f})"
        )
    print(
        f"{predictor.training['bgcs']} BGCs, {predictor.training['adomains']} A-domains -> {path}"
    )
    return 0
