"""The `advnets` console command: lineage, seeds, variants, publish, record and score."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from advnets.errors import AdvnetsError


def _lineage(args: argparse.Namespace) -> int:
    from advnets.provenance.lineage import format_text, run_lineage, workspace_lineage

    root = Path(args.root)
    if args.run:
        lineage = run_lineage(root, args.run, args.tracking_uri)
    else:
        lineage = workspace_lineage(root, args.tracking_uri, args.pipeline)
    print(json.dumps(lineage.as_dict(), indent=2) if args.json else format_text(lineage))
    return 0 if lineage.ok else 1


def _config_and_store(args: argparse.Namespace):
    """The repository root, its validated params.yaml and the MLflow store to read."""
    from advnets.params import load_params
    from advnets.provenance.lineage import existing_store_uri

    root = Path(args.root).resolve()
    return root, load_params(root / "params.yaml"), existing_store_uri(root, args.tracking_uri)


def _earlier_summary(args: argparse.Namespace, root: Path, key: str):
    """The summary at --out that a rewrite adds to (none with --replace)."""
    from advnets.provenance.runs import earlier_summary

    return None if args.replace else earlier_summary(root / args.out, key)


def _said(summary: dict, notes: list[str], uri: str, out: str) -> None:
    """What a rewrite kept of the file it replaces, and what it did not."""
    for note in notes:
        print(note)
    if summary["not_in_store"]:
        print(f"kept {len(summary['not_in_store'])} seed(s) of the earlier {out} whose runs {uri} does not hold "
              "(--replace drops them)")


def _seeds(args: argparse.Namespace) -> int:
    from advnets.atomic import write_text
    from advnets.provenance.runs import seed_summary

    root, params, uri = _config_and_store(args)
    summary, notes = seed_summary(params, uri, _earlier_summary(args, root, "seeds"))
    from_store = summary["n_seeds"] - len(summary["not_in_store"])
    if not from_store:
        return _nothing_found("no scored training run of params.yaml's configuration", uri, args.out)
    write_text(root / args.out, json.dumps(summary, indent=2) + "\n")
    for row in summary["seeds"]:
        se = f" ± {row['test_ll_se']:.1f}" if row["test_ll_se"] is not None else ""
        print(f"seed {row['seed']}: {row['test_ll_mean']:.1f}{se}  run {row['run_id']}")
    if summary["n_seeds"] > 1:
        print(f"{summary['n_seeds']} seeds: {summary['test_ll_mean']:.1f} (sd {summary['test_ll_sd']:.1f})")
    _said(summary, notes, uri, args.out)
    print(f"wrote {args.out}")
    return 0


def _nothing_found(what: str, uri: str, files: str) -> int:
    """A summary command that found nothing keeps the files it would have written."""
    print(f"{what} in {uri}: {files} left as they were", file=sys.stderr)
    return 1


def _variants(args: argparse.Namespace) -> int:
    from advnets.atomic import write_text
    from advnets.parzen import PAPER_TABLE1_MNIST
    from advnets.provenance.runs import variants_markdown, variants_summary
    from advnets.report.figures import variant_curves
    from advnets.report.results import SPENT_EPOCHS, VARIANTS_FIGURE, schedule_spent

    root, params, uri = _config_and_store(args)
    summary, notes = variants_summary(params, uri, _earlier_summary(args, root, "variants"))
    table = summary["variants"]
    out = root / args.out
    files = f"{args.out}, {Path(args.out).with_suffix('.md')} and {VARIANTS_FIGURE}"
    from_store = sum(row["n_seeds"] for row in table) - len(summary["not_in_store"])
    if not from_store:
        return _nothing_found("no finished, scored training run", uri, files)
    write_text(out, json.dumps(summary, indent=2) + "\n")
    write_text(out.with_suffix(".md"), variants_markdown(table))
    figure = root / VARIANTS_FIGURE
    figure.parent.mkdir(parents=True, exist_ok=True)
    variant_curves(figure, table, PAPER_TABLE1_MNIST["Adversarial nets"], schedule_spent(params, SPENT_EPOCHS))
    print(variants_markdown(table), end="")
    _said(summary, notes, uri, args.out)
    print(f"wrote {files}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from advnets.provenance import publish, tracking
    from advnets.provenance.lineage import existing_store_uri

    root = Path(args.root).resolve()
    record = root / tracking.RUN_RECORD
    if not args.run and not record.is_file():
        raise AdvnetsError(f"no {tracking.RUN_RECORD}: run the train stage, or name a run with --run")
    run_id = args.run or tracking.read_run_id(record)
    uri = existing_store_uri(root, args.tracking_uri)
    folder = publish.publish(run_id, uri, root / publish.RESULTS, force=args.force, variant=args.variant)
    print(f"published run {run_id} in {folder.relative_to(root)}")
    print(publish.alias_published(uri, run_id, folder, root / publish.RESULTS))
    return 0


def _record(args: argparse.Namespace) -> int:
    from advnets.provenance.record import record_run

    run = record_run(Path(args.record), Path(args.generator), Path(args.root).resolve(), args.epochs)
    print(f"recorded run {run.run_id}: Parzen log-likelihood on the test set {run.summary['parzen.test_ll_mean']:.2f} "
          f"± {run.summary['parzen.test_ll_se']:.2f}, selected epoch {run.summary['selected_epoch']} of {run.epochs}")
    if run.epochs < run.planned_epochs:
        print(f"the run ended early, after its scored epoch {run.epochs} of the {run.planned_epochs} planned: "
              f"recorded as a run of {run.epochs} epochs")
    return 0


def _score(args: argparse.Namespace) -> int:
    from advnets.eval.scoring import score_generator
    from advnets.params import load_params, param_strings
    from advnets.provenance.publish import SCORE_PARAMS, compare_with_published

    root = Path(args.root).resolve()
    params = load_params(root / "params.yaml")
    result = score_generator(Path(args.generator), params, root / "data")
    print(f"{args.generator}: Parzen log-likelihood on {result.n_test} test images "
          f"{result.test_ll_mean:.2f} ± {result.test_ll_se:.2f} (sigma {result.sigma:.4f}, {result.n_samples} samples)")
    flat = param_strings(params.flat("sample", "parzen"))
    matches, how = compare_with_published(Path(args.generator), result.test_ll_mean, {k: flat[k] for k in SCORE_PARAMS})
    print(how)
    return 1 if matches is False else 0


def _command(commands, name: str, handler, help: str, description: str | None = None, store: bool = True):
    """A subcommand with the options every command shares: --root, and --tracking-uri where it
    reads the MLflow store."""
    command = commands.add_parser(name, help=help, description=description or help)
    command.add_argument("--root", default=".", help="the repository (default: the working directory)")
    if store:
        command.add_argument("--tracking-uri", help="the MLflow store (default: $MLFLOW_TRACKING_URI, else the training run's)")
    command.set_defaults(handler=handler)
    return command


def _replace_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--replace", action="store_true",
        help="write only what the store holds; by default the seeds of the file already at --out whose runs the "
        "store lacks are kept, so a new or partial store forgets no result",
    )


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="advnets", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)

    lineage = _command(
        commands, "lineage", _lineage,
        "trace the pipeline's files to their commit, params, data and MLflow runs, and check they agree",
        "Print data -> model -> samples -> Parzen metrics -> figures with each file's md5, params and MLflow "
        "runs; exit 1 naming every disagreement between the files, dvc.lock and MLflow.",
    )
    lineage.add_argument("--run", metavar="RUN_ID", help="start from this MLflow run instead of the workspace")
    lineage.add_argument("--json", action="store_true", help="print JSON for machines")
    lineage.add_argument(
        "--pipeline", default="", metavar="FOLDER",
        help="another dataset's pipeline (pipelines/cifar10, pipelines/tfd) instead of the root's (MNIST)",
    )

    seeds = _command(
        commands, "seeds", _seeds,
        "gather the Parzen result of every seed of the params.yaml configuration into metrics/seeds.json",
        "Collect, from the MLflow store, the newest scored training run of each train.seed whose other params "
        "equal params.yaml's; write per-seed results, their mean and sd (n - 1), and the run ids.",
    )
    seeds.add_argument("--out", default="metrics/seeds.json", help="where to write (relative to --root)")
    _replace_flag(seeds)

    variants = _command(
        commands, "variants", _variants,
        "tabulate every configuration in the MLflow store against params.yaml (an ablation) into "
        "metrics/variants.{json,md}, with their validation curves in figures/variants.png",
        "Group the finished, scored training runs by the params that differ from params.yaml; per group, the "
        "newest run of each seed, the mean and sd (n - 1) across seeds, and the selected epochs.",
    )
    variants.add_argument("--out", default="metrics/variants.json", help="where to write (relative to --root)")
    _replace_flag(variants)

    publish = _command(
        commands, "publish", _publish,
        "copy a training run's selected generator into results/mnist/[VARIANT/]seed-N/ with its lineage",
        "Download the run's generator artifact, check it against the md5 the run recorded, and write "
        "results/mnist/[VARIANT/]seed-N/generator.pt and lineage.json (commit, params, md5s, Parzen result).",
    )
    publish.add_argument("--run", metavar="RUN_ID", help="the training run (default: models/mlflow-run.json's)")
    publish.add_argument("--force", action="store_true", help="replace another run's published folder for the seed")
    publish.add_argument(
        "--variant", metavar="NAME",
        help="a run of a variant of params.yaml's configuration: publish it in results/mnist/NAME/seed-N/",
    )

    record = _command(
        commands, "record", _record,
        "log a run of benchmarks/epoch_time.py (trained without DVC or MLflow, e.g. on a GPU machine) as a training run",
        "Check the selected generator and data/mnist against the record's md5s, score the generator on the test "
        "set by the Parzen protocol, and log a finished training run (params, every epoch's figures, the "
        "selection, the score, the generator, the lineage tags) to the project's MLflow store, or "
        "$MLFLOW_TRACKING_URI, as the train stage does. `advnets seeds`, `variants` and `publish` then count it.",
        store=False,
    )
    record.add_argument("record", help="epoch_time.py's --json file (run with --select and --save)")
    record.add_argument("generator", help="epoch_time.py's --save file, the selected generator")
    record.add_argument(
        "--epochs", type=int, metavar="E",
        help="record the run's first E epochs, a scored epoch at or after the selected one: the run of E epochs "
        "(to give seeds cut short at different epochs one length; default: all, or up to the last scored epoch)",
    )

    score = _command(
        commands, "score", _score,
        "score a generator file by the sample and parzen stages' protocol (params.yaml), writing nothing",
        store=False,
    )
    score.add_argument("generator", help="e.g. results/mnist/seed-0/generator.pt")
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except AdvnetsError as exc:
        print(f"advnets {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
