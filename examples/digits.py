"""scikit-learn's digits (1,797 8x8 images, bundled: no download) classified by a spiking network.

Run:  python examples/digits.py [--out outputs/digits] [--stdp] [--folds 5]

Five-fold cross-validation (scikit-learn's ``cross_validate``, unshuffled stratified folds) of
``sapicore.estimators.SpikingClassifier`` with its linear and prototype readouts and its latency
encoder, beside a logistic regression on the raw pixels in the same run (the honest baseline).
``--stdp`` adds the classifier that learns its input weights with STDP during ``fit`` (samples
presented one after another: a few minutes per fold). Prints a markdown table (accuracy mean and
spread over the folds, fit and predict seconds per fold) and writes it with ``summary.json`` into
the output folder. Needs scikit-learn (``pip install 'sapicore[sklearn]'``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sapicore.estimators import SpikingClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/digits")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=None, help="use the first N images only (quick runs)")
    parser.add_argument("--stdp", action="store_true", help="add the classifier with STDP during fit (compiled)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    if args.samples:
        X, y = X[: args.samples], y[: args.samples]
    models = {
        "logistic regression, raw pixels": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "SpikingClassifier (Poisson, linear readout)": SpikingClassifier(),
        "SpikingClassifier (Poisson, prototype readout)": SpikingClassifier(readout="prototype"),
        "SpikingClassifier (latency code, linear readout)": SpikingClassifier(encoder="latency", weight_scale=5.0),
    }
    if args.stdp:
        models["SpikingClassifier (Poisson, STDP during fit, compiled)"] = SpikingClassifier(
            plasticity="stdp", duration=100.0, fast=True
        )
    rows = {}
    start = time.perf_counter()
    for name, model in models.items():
        result = cross_validate(model, X, y, cv=args.folds)
        rows[name] = {
            "accuracy_mean": float(result["test_score"].mean()),
            "accuracy_std": float(result["test_score"].std()),
            "fold_accuracies": result["test_score"].tolist(),
            "fit_seconds_per_fold": float(result["fit_time"].mean()),
            "predict_seconds_per_fold": float(result["score_time"].mean()),
        }
        print(f"# {name}: {rows[name]['accuracy_mean']:.3f}", flush=True)
    lines = [
        f"digits, {len(y)} images, {args.folds}-fold cross-validation, one CPU thread",
        "",
        "| model | accuracy (mean ± sd over folds) | fit s per fold | predict s per fold |",
        "|---|---:|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f} | "
            f"{row['fit_seconds_per_fold']:.2f} | {row['predict_seconds_per_fold']:.2f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    summary = {"images": len(y), "folds": args.folds, "wall_seconds": time.perf_counter() - start, "models": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
