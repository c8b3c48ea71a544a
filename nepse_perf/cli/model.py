"""``nepse-perf train`` (fit, evaluate and save a model) and ``nepse-perf bench-model``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nepse_perf.cli.args import (
    add_command,
    int_list,
    load_input,
    positive_int,
    report_error,
    usage_errors,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``bench-model`` with the ``nepse-perf`` parser."""
    from nepse_perf.model.train import KINDS

    t = add_command(
        sub,
        "train",
        _cmd_train,
        help="build the data set, walk-forward evaluate a model, save it as ONNX + JSON",
        description="Build the data set from --prices (default: the whole shipped market), evaluate the "
        "model on expanding walk-forward splits beside the baselines, fit it on every row and "
        "save model.onnx + metadata.json into --out.",
    )
    t.add_argument("--out", type=Path, required=True, metavar="DIR", help="model directory")
    t.add_argument("--prices", type=Path, metavar="PATH", help="price file/directory (the market)")
    t.add_argument("--kind", choices=KINDS, default="hgb", help="model kind (default hgb)")
    t.add_argument("--horizon", type=positive_int, default=1, metavar="H", help="sessions ahead")
    t.add_argument("--n-splits", type=positive_int, default=5, metavar="K", help="walk-forward")
    t.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    t.add_argument("--float32", action="store_true", help="trees: save a float32 ONNX graph")

    b = add_command(
        sub,
        "bench-model",
        _cmd_bench_model,
        help="batch inference speed against batch size, native vs ONNX Runtime, 1 vs all cores",
        description="Train each model kind on the sample (or load --model), then time "
        "predictions per second and latency per call for every batch size, engine and thread "
        "count; write bench-model.csv/.json/.png into --out.",
    )
    b.add_argument("--model", type=Path, metavar="DIR", help="a saved model (ONNX only)")
    b.add_argument(
        "--kinds", default="hgb,lightgbm,mlp", metavar="K,K", help="kinds to train and time"
    )
    b.add_argument(
        "--batch-sizes",
        type=int_list,
        default=[1, 10, 100, 1000, 10000, 100000],
        metavar="B1,B2,...",
        help="rows per call (default 1,10,100,1000,10000,100000)",
    )
    b.add_argument("--repeat", type=positive_int, default=5, metavar="N", help="timed repeats")
    b.add_argument("--out", type=Path, default=Path("bench-results/model"), metavar="DIR")


def _load_prices(path: Path | None) -> pd.DataFrame:
    from nepse_perf.data import market_path

    return load_input(path or market_path())


def _cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from nepse_perf.model.dataset import make_dataset
    from nepse_perf.model.io import save
    from nepse_perf.model.train import fold_table, metrics_table, train

    prices = _load_prices(args.prices)
    with usage_errors():
        ds = make_dataset(prices, horizon=args.horizon)
        model = train(ds, kind=args.kind, seed=args.seed, n_splits=args.n_splits)
    try:
        save(model, args.out, dtype=np.float32 if args.float32 else None)
    except OSError as exc:
        return report_error("train", f"cannot write {args.out}: {exc}")
    print(
        f"{model.kind} {model.version}: {len(ds):,} rows ({ds.dropped['warmup']:,} warm-up and "
        f"{ds.dropped['no_target']:,} without a target dropped), {model.train_start} .. "
        f"{model.train_end}, {model.metrics['folds']} walk-forward folds"
    )
    print(metrics_table(model).round(4).to_string())
    print("walk-forward, fold by fold:")
    print(fold_table(model).round(4).to_string())
    print(f"saved to {args.out}")
    return 0


def _cmd_bench_model(args: argparse.Namespace) -> int:
    from nepse_perf.bench.model import run_bench_model

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    with usage_errors():
        return run_bench_model(
            kinds=kinds,
            model_dir=args.model,
            batch_sizes=args.batch_sizes,
            repeat=args.repeat,
            out=args.out,
        )
