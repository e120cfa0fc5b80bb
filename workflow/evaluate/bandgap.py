"""Band-gap regression from language-model embeddings (MatGPT's downstream task), Matbench protocol.

Data: Matbench `matbench_expt_gap` (4,604 compositions, experimental gap in eV). Each composition
is written out twice -- the formula, and a templated sentence naming its elements -- embedded with
the run's final checkpoint (mean over tokens of one hidden-state layer), and regressed with ridge
and a small MLP. Beside them: the dummy mean predictor, a random forest on element-fraction vectors
(the composition baseline; matminer's Magpie features are not a dependency), and embeddings +
element fractions concatenated. Scores: MAE over Matbench's 5 folds,
`KFold(n_splits=5, shuffle=True, random_state=18012019)` in file order.

Subcommands: `embed` (per run), `fit` (per run), `baselines` (once per scale).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.evaluate.composition import composition_text, description_text, fraction_vector, parse_formula
from workflow.evaluate.settings import BANDGAP_DATA_FILE as DATA_FILE
from workflow.io import atomic_path, atomic_write_json

MATBENCH_SEED = 18012019
N_FOLDS = 5
TEXTS = ("formula", "description")


# -- data --------------------------------------------------------------------------------------------
def load_bandgap(data_dir: str | Path, rows: int | None = None, seed: int = 0) -> dict:
    """Parsed rows of matbench_expt_gap in file order; unparsable compositions skipped and counted.

    `rows` keeps a seeded subset (file order kept) so the tiny DAG stays fast; None = all."""
    import csv

    path = Path(data_dir) / DATA_FILE
    if not path.is_file():
        raise ScaleDAGError(f"band gap: data file {path} is missing (set bandgap.data_dir)")
    ids, formulas, gaps, amounts, skipped = [], [], [], [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"composition", "gap expt"} - set(reader.fieldnames or [])
        if missing:
            raise ScaleDAGError(f"{path}: missing column(s) {sorted(missing)}; expected mbid, composition, gap expt")
        for lineno, row in enumerate(reader, start=2):
            try:
                amt = parse_formula(row["composition"])
                gap = float(row["gap expt"])
            except (ScaleDAGError, ValueError, TypeError) as exc:
                skipped.append({"line": lineno, "composition": row.get("composition"), "why": str(exc)})
                continue
            ids.append(row.get("mbid") or f"row-{lineno}")
            formulas.append(row["composition"])
            gaps.append(gap)
            amounts.append(amt)
    if skipped:
        print(
            f"band gap: skipped {len(skipped)} unparsable row(s) of {path}, first at line {skipped[0]['line']}: "
            f"{skipped[0]['why']}",
            flush=True,
        )
    total = len(ids)
    keep = list(range(total))
    if rows is not None and rows < total:
        keep = sorted(random.Random(seed).sample(range(total), rows))
    return {
        "path": str(path),
        "ids": [ids[i] for i in keep],
        "formulas": [formulas[i] for i in keep],
        "gap": np.array([gaps[i] for i in keep]),
        "amounts": [amounts[i] for i in keep],
        "skipped": skipped,
        "rows_available": total,
    }


def texts(data: dict, kind: str) -> list[str]:
    if kind == "formula":
        return [composition_text(f) for f in data["formulas"]]
    if kind == "description":
        return [description_text(f, a) for f, a in zip(data["formulas"], data["amounts"])]
    raise ScaleDAGError(f"band gap: text kind {kind!r} is not one of {list(TEXTS)}")


def composition_features(data: dict) -> np.ndarray:
    return np.stack([fraction_vector(a) for a in data["amounts"]])


def matbench_folds(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Matbench v0.1's 5-fold split of n rows in file order (scripts/mvb01_generate_validation.py)."""
    from sklearn.model_selection import KFold

    return list(KFold(n_splits=N_FOLDS, shuffle=True, random_state=MATBENCH_SEED).split(np.arange(n)))


# -- embeddings ---------------------------------------------------------------------------------------
def _hidden_layers(model) -> list:
    """Modules whose outputs are hidden states 0..L: embedding, blocks 1..L-1, final norm (after block L)."""
    inner = getattr(model, "module", model)
    layers = list(inner.decoder.layers)
    final = inner.decoder.final_layernorm
    return [inner.embedding, *layers[:-1], final if final is not None else layers[-1]]


def mean_pooled(model, token_lists: list[list[int]], layer: int, seq_length: int, batch_size: int = 64) -> np.ndarray:
    """Mean over each text's tokens of hidden-state `layer` (HF's hidden_states indexing; -1 = last)."""
    import torch

    from workflow.model import megatron_cpu

    modules = _hidden_layers(model)
    if not -len(modules) <= layer < len(modules):
        raise ScaleDAGError(f"bandgap.layer {layer}: the model has hidden states 0..{len(modules) - 1}")
    captured = {}

    def hook(_module, _inp, out):
        captured["h"] = out[0] if isinstance(out, tuple) else out

    handle = modules[layer].register_forward_hook(hook)
    out = []
    order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
    result = [None] * len(token_lists)
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                batch = [token_lists[i][:seq_length] for i in order[start : start + batch_size]]
                width = max(len(t) for t in batch)
                tokens = torch.zeros(len(batch), width, dtype=torch.long)
                mask = torch.zeros(len(batch), width, 1)
                for j, t in enumerate(batch):
                    tokens[j, : len(t)] = torch.tensor(t)
                    mask[j, : len(t)] = 1.0
                pos = torch.arange(width).unsqueeze(0).expand_as(tokens)
                with megatron_cpu.model_compute():  # a plain forward: no device rewriting needed
                    model(tokens, pos, None)
                h = captured["h"].transpose(0, 1).float().cpu()  # Megatron is [s, b, h]
                pooled = (h * mask).sum(1) / mask.sum(1)
                for j, i in enumerate(order[start : start + batch_size]):
                    result[i] = pooled[j].numpy()
    finally:
        handle.remove()
    del out
    return np.stack(result)


def embed(
    spec: dict,
    data_dir: str,
    out: str,
    layer: int = -1,
    rows: int | None = None,
    tokenizer: str | None = None,
    batch_size: int = 64,
) -> dict:
    """Embeddings of both text forms of every (kept) composition with the run's final checkpoint."""
    import torch  # torch: embed only (fit/baselines jobs never load it)

    from workflow.evaluate.lm_eval_megatron import check_tokenizer, load_run_tokenizer  # lm_eval, torch: embed only
    from workflow.evaluate.loss import load_model_for_eval  # torch: embed only
    from workflow.hpc.launch import shutdown  # torch: embed only
    from workflow.model import megatron_cpu  # torch: embed only

    data = load_bandgap(data_dir, rows)
    tokenizer = tokenizer or spec["data"]["tokenizer"]
    tok = load_run_tokenizer(tokenizer)
    check_tokenizer(tok, int(spec["vocab_size"]), str(tokenizer))
    megatron_cpu.activate()
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    t0 = time.perf_counter()
    arrays = {}
    try:
        model, mspec, iteration = load_model_for_eval(spec)
        for kind in TEXTS:
            ids = [e.ids for e in tok.encode_batch(texts(data, kind), add_special_tokens=False)]
            arrays[kind] = mean_pooled(model, ids, layer, mspec.seq_length, batch_size)
            print(
                f"embedded {len(ids)} {kind} texts ({arrays[kind].shape[1]} dims) at {time.perf_counter() - t0:.1f}s",
                flush=True,
            )
    finally:
        shutdown()
    with atomic_path(out, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.array(data["ids"]), gap=data["gap"], **arrays)
    meta = {
        "run_id": spec.get("run_id"),
        "iteration": iteration,
        "layer": layer,
        "rows": len(data["ids"]),
        "rows_available": data["rows_available"],
        "skipped": len(data["skipped"]),
        "skipped_rows": data["skipped"][:20],
        "source": data["path"],
    }
    atomic_write_json(Path(out).with_suffix(".json"), meta)
    return meta


# -- regression ----------------------------------------------------------------------------------------
def make_regressor(kind: str, seed: int = 0, mlp_iter: int = 200, rf_trees: int = 100):
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "dummy":
        return DummyRegressor(strategy="mean")
    if kind == "ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    if kind == "mlp":
        return make_pipeline(
            StandardScaler(),
            MLPRegressor(
                hidden_layer_sizes=(64,), alpha=1e-3, max_iter=mlp_iter, early_stopping=True, random_state=seed
            ),
        )
    if kind == "rf":
        return RandomForestRegressor(n_estimators=rf_trees, random_state=seed, n_jobs=1)
    raise ScaleDAGError(f"band gap: regressor {kind!r} is not one of dummy, ridge, mlp, rf")


def cross_validate(X: np.ndarray, y: np.ndarray, kind: str, **kw) -> dict:
    """MAE (and RMSE) per Matbench fold and their mean/std, as the Matbench leaderboard reports."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    maes, rmses = [], []
    for train, test in matbench_folds(len(y)):
        model = make_regressor(kind, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[train], y[train])
        err = model.predict(X[test]) - y[test]
        maes.append(float(np.abs(err).mean()))
        rmses.append(float(np.sqrt((err**2).mean())))
    return {
        "mae": float(np.mean(maes)),
        "mae_std": float(np.std(maes)),
        "rmse": float(np.mean(rmses)),
        "fold_mae": maes,
        "fold_sizes": [len(t) for _, t in matbench_folds(len(y))],
    }


def fit_run(embeddings: str, data_dir: str, out: str, heads: list[str], mlp_iter: int = 200) -> dict:
    """Regression heads on one run's embeddings (each text form), and on embeddings + fractions."""
    npz = np.load(embeddings)
    meta = json.loads(Path(embeddings).with_suffix(".json").read_text())
    data = load_bandgap(data_dir, meta["rows"] if meta["rows"] < meta["rows_available"] else None)
    if list(npz["ids"]) != data["ids"]:
        raise ScaleDAGError(f"{embeddings}: rows differ from {data['path']} (re-run embed_bandgap)")
    y, comp = data["gap"], composition_features(data)
    results = {}
    for kind in TEXTS:
        for head in heads:
            results[f"{head}[{kind}]"] = cross_validate(npz[kind], y, head, mlp_iter=mlp_iter)
            print(f"{head}[{kind}]: MAE {results[f'{head}[{kind}]']['mae']:.3f} eV", flush=True)
    both = np.hstack([npz["formula"], comp])
    for head in heads:
        results[f"{head}[formula+composition]"] = cross_validate(both, y, head, mlp_iter=mlp_iter)
        print(f"{head}[formula+composition]: MAE {results[f'{head}[formula+composition]']['mae']:.3f} eV", flush=True)
    record = {
        "run_id": meta["run_id"],
        "iteration": meta["iteration"],
        "layer": meta["layer"],
        "rows": len(y),
        "skipped": meta["skipped"],
        "results": results,
    }
    atomic_write_json(out, record)
    return record


def baselines(data_dir: str, out: str, rows: int | None = None, rf_trees: int = 100) -> dict:
    """Dummy mean predictor and a random forest on element fractions (the composition baseline)."""
    data = load_bandgap(data_dir, rows)
    y = data["gap"]
    results = {
        "dummy": cross_validate(np.zeros((len(y), 1)), y, "dummy"),
        "rf[composition]": cross_validate(composition_features(data), y, "rf", rf_trees=rf_trees),
    }
    for k, v in results.items():
        print(f"{k}: MAE {v['mae']:.3f} ± {v['mae_std']:.3f} eV", flush=True)
    record = {
        "rows": len(y),
        "rows_available": data["rows_available"],
        "skipped": len(data["skipped"]),
        "source": data["path"],
        "results": results,
    }
    atomic_write_json(out, record)
    return record


def _rows(v: str | None) -> int | None:
    return None if v in (None, "", "all", "None") else int(v)


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="band-gap regression from model embeddings (Matbench expt_gap)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--spec", required=True)
    e.add_argument("--data-dir", required=True)
    e.add_argument("--layer", type=int, default=-1)
    e.add_argument("--rows", default=None, help="seeded subset of rows (tiny); default all")
    e.add_argument("--tokenizer")
    e.add_argument("--out", required=True, help=".npz (a .json with the row counts goes beside it)")
    f = sub.add_parser("fit")
    f.add_argument("--embeddings", required=True)
    f.add_argument("--data-dir", required=True)
    f.add_argument("--heads", nargs="+", default=["ridge", "mlp"])
    f.add_argument("--mlp-iter", type=int, default=200)
    f.add_argument("--out", required=True)
    b = sub.add_parser("baselines")
    b.add_argument("--data-dir", required=True)
    b.add_argument("--rows", default=None)
    b.add_argument("--rf-trees", type=int, default=100)
    b.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "embed":
        print(
            json.dumps(
                embed(
                    json_option("--spec", args.spec),
                    args.data_dir,
                    args.out,
                    args.layer,
                    _rows(args.rows),
                    args.tokenizer,
                )
            )
        )
    elif args.cmd == "fit":
        fit_run(args.embeddings, args.data_dir, args.out, args.heads, args.mlp_iter)
    else:
        baselines(args.data_dir, args.out, _rows(args.rows), args.rf_trees)


if __name__ == "__main__":
    main()
