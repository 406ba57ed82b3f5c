"""Where Non-local blocks matter: the same_colour task, every arm over several seeds.

Each arm is the recipe ``configs/builtin/same_colour.yaml`` (96 px frames, the two shapes at
least 64 px apart) plus a few overrides: the model (i3d_nl_tiny, the plain i3d_tiny,
i3d_tiny_deep4 with the NL net's parameter budget, GCNet's query-independent global-context
block in the NL positions) and the data (the far rule, the near control, a distance band inside
the plain net's reach, 64 px frames that its deepest layer spans whole) and the same_shape task
in two stages: ``names_*`` train the net to name both shapes (shape_names, the first stage of
``configs/builtin/same_shape.yaml``), ``shape_*`` fine-tune that run's ``last.pt`` on "same
shape?" (``FIRST_STAGE``; a first stage runs before its second, same seed, and its run folder is
keyed by its own training). Runs append one JSON line each to ``<out>/results.jsonl``; a run
whose training is already there is skipped, so the experiment can be run in pieces, on several
machines, and resumed after an interruption (an interrupted run also resumes from its own
``last.pt``). A run is known by what it trains: the recipe resolved with its overrides, without
its folders and seed, and for a second stage the training of the run it starts from
(``run_key``; the seed is kept beside it). Change the recipe and the old
runs no longer count for the arms they were run as (the tables list them as left out); two arms
that resolve to the same training share their runs. ``<out>/summary.md`` gets the tables:
held-out video accuracy per arm (every seed, mean with a 95% t-interval, take-off rate with a
95% Wilson interval, seconds per run) and the NL - plain gap per data condition.

Usage (a run takes ~10-15 min on 2 free CPU cores)::

    python experiments/nonlocal_matters.py                          # all arms, seeds 0-4
    python experiments/nonlocal_matters.py --arms nl,plain --seeds 0-9
    python experiments/nonlocal_matters.py --summary                # tables from the JSONL
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "builtin" / "same_colour.yaml"
TAKE_OFF = 0.90  # held-out video accuracy that counts as "took off" (chance: 0.50)

_SIZE64 = [
    "synthetic.size=64",
    "data.short_side=64",
    "data.train_scale=[64,64]",
    "data.crop_size=64",
    "data.test_scale=64",
    "synthetic.min_distance=32",
]
_NEAR = ["synthetic.min_distance=0", "synthetic.max_distance=0"]
# The same_shape task from scratch, 64 px (the third session's diagnostic: never took off).
_SHAPE = ["synthetic.task=same_shape", *_SIZE64]
_PLAIN = ["model.name=i3d_tiny"]
# same_shape in two stages, the recipes configs/builtin/shape_names.yaml and same_shape.yaml:
# 96 px, >= 64 px apart (this recipe's data), names first (2,400 steps), then "same shape?".
_NAMES = ["synthetic.task=shape_names", "train.iterations=2400", "train.eval_every=4"]
_SAME_SHAPE = ["synthetic.task=same_shape"]


def _band(lo: int, hi: int) -> list[str]:
    return [f"synthetic.min_distance={lo}", f"synthetic.max_distance={hi}"]


# The controls of the claim: arm -> (what it shows, overrides of the recipe), each run on the
# same_colour task and, as "names_<arm>" / "shape_<arm>", on the two-stage same_shape task.
_CONTROLS: dict[str, tuple[str, list[str]]] = {
    "plain_matched": ("i3d_tiny_deep4 (plain, ~NL's parameters)", ["model.name=i3d_tiny_deep4"]),
    "global_context": ("GCNet block in the NL positions", ["model.nl_block=global_context"]),
    "nl_near": ("i3d_nl_tiny, near control (p2 = p1)", _NEAR),
    "plain_near": ("i3d_tiny, near control (p2 = p1)", [*_PLAIN, *_NEAR]),
    "nl_d24-40": ("i3d_nl_tiny, 24-40 px apart", _band(24, 40)),
    "plain_d24-40": ("i3d_tiny, 24-40 px apart", [*_PLAIN, *_band(24, 40)]),
    "nl_64": ("i3d_nl_tiny, 64 px frames, >= 32 px", _SIZE64),
    "plain_64": ("i3d_tiny, 64 px frames, >= 32 px", [*_PLAIN, *_SIZE64]),
}
# arm -> (what it shows, overrides of the recipe). The recipe's model is i3d_nl_tiny.
ARMS: dict[str, tuple[str, list[str]]] = {
    "nl": ("i3d_nl_tiny, 96 px, >= 64 px apart", []),
    "plain": ("i3d_tiny (no NL block)", _PLAIN),
    **_CONTROLS,
    "names_nl": ("shape_names (name S1 and S2: 9 classes), i3d_nl_tiny, 2,400 steps", _NAMES),
    "names_plain": ("shape_names, i3d_tiny, 2,400 steps", [*_PLAIN, *_NAMES]),
    "shape_nl": ("same_shape, i3d_nl_tiny fine-tuned from names_nl", _SAME_SHAPE),
    "shape_plain": ("same_shape, i3d_tiny fine-tuned from names_plain", [*_PLAIN, *_SAME_SHAPE]),
}
# second-stage arm -> the arm whose run (same seed) it fine-tunes (model.pretrained = its last.pt)
FIRST_STAGE: dict[str, str] = {"shape_nl": "names_nl", "shape_plain": "names_plain"}
# Diagnostics (not run by default): same_shape from scratch, one recipe choice changed at a
# time, and the controls on the two-stage same_shape task (two runs each).
DIAGNOSTIC_ARMS: dict[str, tuple[str, list[str]]] = {
    "shape_scratch_nl": ("same_shape from scratch, i3d_nl_tiny, 64 px, >= 32 px", _SHAPE),
    "shape_scratch_plain": ("same_shape from scratch, i3d_tiny, 64 px", [*_PLAIN, *_SHAPE]),
    "nl_scale_logits": ("NL logits x d^-0.5 (flatter attention)", ["model.nl_scale_logits=true"]),
    "nl_pool_first": ("NL pools before phi/g (PySlowFast)", ["model.nl_pool_first=true"]),
    "nl_init0.1": ("NL output BN starts at 0.1, not 0", ["model.nl_init_scale=0.1"]),
    "nl_msra": (
        "NL convs He-initialised (PySlowFast), not PyTorch's default",
        ["model.nl_init=msra"],
    ),
}
for _name, (_what, _overrides) in _CONTROLS.items():
    DIAGNOSTIC_ARMS[f"names_{_name}"] = (f"shape_names, {_what}", [*_overrides, *_NAMES])
    DIAGNOSTIC_ARMS[f"shape_{_name}"] = (f"same_shape, {_what}", [*_overrides, *_SAME_SHAPE])
    FIRST_STAGE[f"shape_{_name}"] = f"names_{_name}"
MAIN_ARMS = tuple(ARMS)
ARMS |= DIAGNOSTIC_ARMS
# data condition -> (NL arm, plain arm): the gap table (receptive field of the plain net:
# 27 px after res3, 43 after res4, 75 after res5).
CONDITIONS: dict[str, tuple[str, str]] = {
    "96 px, p2 = p1 (near)": ("nl_near", "plain_near"),
    "96 px, 24-40 px apart": ("nl_d24-40", "plain_d24-40"),
    "96 px, >= 64 px apart": ("nl", "plain"),
    "64 px, >= 32 px apart": ("nl_64", "plain_64"),
    "shape_names (naming S1, S2), 96 px, >= 64 px apart": ("names_nl", "names_plain"),
    "same_shape after shape_names, 96 px, >= 64 px apart": ("shape_nl", "shape_plain"),
    "same_shape from scratch, 64 px, >= 32 px apart": ("shape_scratch_nl", "shape_scratch_plain"),
    "same_shape, two stages, 96 px, p2 = p1 (near)": ("shape_nl_near", "shape_plain_near"),
    "same_shape, two stages, 96 px, 24-40 px apart": ("shape_nl_d24-40", "shape_plain_d24-40"),
    "same_shape, two stages, 64 px, >= 32 px apart": ("shape_nl_64", "shape_plain_64"),
}

# two-sided 95% quantiles of Student's t by degrees of freedom (normal beyond 30)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
_T975 |= {9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t975(df: float) -> float:
    """95% two-sided t quantile for ``df`` degrees of freedom (rounded down: conservative)."""
    if df < 1:
        return math.nan
    return _T975[max(k for k in _T975 if k <= df)] if df <= 30 else 1.96


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN half-width for one value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if n == 1:
        return mean, math.nan
    return mean, t975(n - 1) * statistics.stdev(values) / math.sqrt(n)


def gap_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """mean(a) - mean(b) and the half-width of Welch's 95% interval."""
    if len(a) < 2 or len(b) < 2:
        return statistics.fmean(a) - statistics.fmean(b) if a and b else math.nan, math.nan
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se2 = va + vb
    if se2 == 0:
        return statistics.fmean(a) - statistics.fmean(b), 0.0
    df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return statistics.fmean(a) - statistics.fmean(b), t975(df) * math.sqrt(se2)


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a rate k / n."""
    if n == 0:
        return math.nan, math.nan
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# --------------------------------------------------------------------------- runs

# left out of a run's config key: where it lives, and its seed (kept beside the key)
_NOT_KEYED = (
    "model.pretrained",  # a second stage's: keyed as its first stage's training (run_key)
    "model.pretrained_recipe",  # "" in every arm: the experiment runs its first stages itself
    "synthetic.root",
    "train.output_dir",
    "train.progress",
    "synthetic.seed",
    "train.seed",
)


def training_overrides(arm: str, seed: int, extra: Sequence[str] = ()) -> list[str]:
    """What one run changes in the recipe: the arm's overrides, ``extra``, then the seed."""
    return [*ARMS[arm][1], *extra, f"synthetic.seed={seed}", f"train.seed={seed}"]


def run_folder(arm: str, seed: int, out: Path, extra: Sequence[str]) -> Path:
    """A run's folder: one per training (a resume needs the same config, a new recipe a new
    folder)."""
    return out / "runs" / arm / f"seed{seed}_{config_key(training_overrides(arm, seed, extra))}"


def run_overrides(arm: str, seed: int, out: Path, data_root: Path, extra: Sequence[str]) -> list:
    """The recipe overrides of one run: ``training_overrides``, its first stage's weights (if
    it has one), then its folders."""
    overrides = training_overrides(arm, seed, extra)
    data = [o for o in overrides if o.startswith("synthetic.") and "seed=" not in o]
    data_key = "_".join(o.removeprefix("synthetic.").replace("=", "") for o in data) or "far"
    if arm in FIRST_STAGE:
        first = run_folder(FIRST_STAGE[arm], seed, out, extra)
        overrides.append(f"model.pretrained={first / 'last.pt'}")
    return [
        *overrides,
        f"synthetic.root={data_root / f'{data_key}_seed{seed}'}",  # shared by arms on that data
        f"train.output_dir={run_folder(arm, seed, out, extra)}",
        "train.progress=false",
    ]


def config_key(overrides: Sequence[str], recipe: Path = RECIPE) -> str:
    """What a run trains but its seed, as a short hash: the recipe with ``overrides``."""
    from nlvideo.config import config_to_dict, load_config
    from nlvideo.engine.resume import flatten

    resolved = flatten(config_to_dict(load_config(recipe, overrides)))
    for dotted in _NOT_KEYED:
        del resolved[dotted]
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def run_key(arm: str, extra: Sequence[str] = ()) -> str:
    """What a run of ``arm`` trains but its seed: ``config_key``, and for a second stage the
    ``run_key`` of the run it fine-tunes (from scratch and fine-tuned are different runs)."""
    key = config_key(training_overrides(arm, 0, extra))
    if arm not in FIRST_STAGE:
        return key
    return staged_key(key, run_key(FIRST_STAGE[arm], extra))


def staged_key(key: str, first_stage: str) -> str:
    """The key of a run with config key ``key`` that starts from the run keyed ``first_stage``."""
    return hashlib.sha1(f"{key} after {first_stage}".encode()).hexdigest()[:12]


def train_one(overrides: list[str]) -> dict[str, Any]:
    """Train the recipe with ``overrides``; the numbers of one results line."""
    import torch

    from nlvideo.config import load_config
    from nlvideo.engine.checkpoint import load_checkpoint
    from nlvideo.models import build_model
    from nlvideo.pipeline import run_training

    cfg = load_config(RECIPE, overrides)
    start = time.perf_counter()
    report = run_training(cfg)
    seconds = time.perf_counter() - start
    records = [
        json.loads(line)
        for line in (Path(cfg.train.output_dir) / "metrics.jsonl").read_text().splitlines()
    ]
    epochs = [r for r in records if r["kind"] == "epoch"]
    evals = [r for r in records if r["kind"] == "eval"]
    first_up = next((r["step"] for r in evals if r["video_top1"] >= TAKE_OFF), None)
    classes = len(report["classes"])
    model = build_model(cfg.model.name, **cfg.model.model_kwargs(num_classes=classes))
    last = Path(cfg.train.output_dir) / "last.pt"
    state = load_checkpoint(last)["model"]
    return {
        "video_top1": report["video_top1"],
        "clip_top1": report["clip_top1"],
        "train_acc": epochs[-1]["acc"] if epochs else None,
        "take_off_step": first_up,  # first evaluation at >= TAKE_OFF (None: never)
        "evals": [(r["step"], r["video_top1"]) for r in evals],
        "seconds": seconds,
        "params": sum(p.numel() for p in model.parameters()),
        # how far each NL block's output BN scale left its zero init (0: the block unused)
        "nl_gamma": {
            k.removesuffix(".out_norm.weight"): float(v.abs().mean())
            for k, v in state.items()
            if k.endswith("out_norm.weight")
        },
        # share of an S2 query's attention on S1's cells, per NL / GC block (and chance)
        "attention_on_s1": _attention_of_run(cfg, last),
        "threads": torch.get_num_threads(),
    }


def attention_on_s1(
    model: Any, clips: Any, centres: Sequence[tuple[tuple[float, float], ...]], size: int
) -> dict[str, tuple[float, float]]:
    """Per attention block: the mean share of a query on S2 that falls on S1's cells.

    For each clip, the query is the feature cell containing p2 in the last time step; the keys
    are the (pooled) cells containing p1, at every time step (the temporal kernels mix time).
    A Non-local map that relates S2 to S1 puts much more than chance there; a global-context
    block (one map for every query) is measured the same way.

    Args:
        model: A network in eval mode with NLBlockND / GlobalContextBlock modules.
        clips: float (N, 3, T, H, W), normalised as the test transform does.
        centres: Per clip, ((x1, y1), (x2, y2)) in pixels.
        size: Frame size in pixels.

    Returns:
        module name -> (mean share on S1's cells, chance share = those cells / all keys).
    """
    import torch

    from nlvideo.models.global_context import GlobalContextBlock
    from nlvideo.models.non_local import NLBlockND

    maps: dict[str, tuple[Any, tuple[int, ...], tuple[int, ...]]] = {}

    def hook(name: str) -> Callable:
        def capture(module: Any, inputs: tuple, _output: Any) -> None:
            x = inputs[0]
            if isinstance(module, NLBlockND):
                attention = module.forward_reference(x)[1]  # (N, L, M)
                keys = tuple(module.pool(x[:, :1]).shape[2:])  # pooled (T, H, W) grid
            else:
                attention = module.attention(x)[:, None].expand(-1, x[0, 0].numel(), -1)
                keys = tuple(x.shape[2:])
            maps[name] = (attention, tuple(x.shape[2:]), keys)

        return capture

    handles = [
        m.register_forward_hook(hook(n))
        for n, m in model.named_modules()
        if isinstance(m, NLBlockND | GlobalContextBlock)
    ]
    try:
        with torch.no_grad():
            model(clips)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, (attention, (tq, hq, wq), (tk, hk, wk)) in maps.items():
        shares = []
        for n, ((x1, y1), (x2, y2)) in enumerate(centres):
            query = ((tq - 1) * hq + int(y2 * hq / size)) * wq + int(x2 * wq / size)
            cell = int(y1 * hk / size) * wk + int(x1 * wk / size)
            keys = [t * hk * wk + cell for t in range(tk)]
            shares.append(float(attention[n, query, keys].sum()))
        out[name] = (statistics.fmean(shares), tk / (tk * hk * wk))
    return out


def _attention_of_run(cfg: Any, checkpoint: Path, num_clips: int = 64) -> dict[str, Any]:
    """``attention_on_s1`` of a trained run on its first held-out clips (rendered again)."""
    import numpy as np
    import torch

    from nlvideo.builtin.generate import SyntheticParams, render_dataset_clip
    from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint

    s = cfg.synthetic
    keys = ("num_train", "num_val", "seed", "size", "min_frames", "max_frames", "task")
    # fps, crf and gop change the files, not the rendered pixels
    params = SyntheticParams(
        **{k: getattr(s, k) for k in keys},
        fps=25,
        crf=18,
        gop=12,
        min_distance=s.min_distance,
        max_distance=s.max_distance,
    )
    rendered = [render_dataset_clip(params, "val", i) for i in range(min(num_clips, s.num_val))]
    frames = torch.from_numpy(np.stack([f for _, f, _ in rendered]))  # (N, T, H, W, 3)
    clips = (frames.permute(0, 4, 1, 2, 3).float() / 255 - 0.45) / 0.225  # (N, 3, T, H, W)
    model = build_model_from_checkpoint(load_checkpoint(checkpoint))
    found = attention_on_s1(model, clips, [t.centres for _, _, t in rendered], s.size)
    return {name: {"share": v, "chance": c} for name, (v, c) in found.items()}


def load_results(path: Path) -> list[dict[str, Any]]:
    """The results lines written so far (none if the file does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_all(
    arms: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    *,
    extra: Sequence[str] = (),
    data_root: Path | None = None,
    train: Callable[[list[str]], dict[str, Any]] = train_one,
) -> list[dict[str, Any]]:
    """Run every (arm, seed) whose training is not yet in ``out/results.jsonl``, one line each."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    data_root = data_root or out / "data"
    done = {(r["seed"], r["config"]): r["arm"] for r in load_results(path) if "config" in r}
    staged = [FIRST_STAGE[a] for a in arms if a in FIRST_STAGE and FIRST_STAGE[a] not in arms]
    arms = [*staged, *arms]  # a second stage's first stage (same seed) runs before it
    for seed in seeds:  # seed-major: a partial run has every arm on the first seeds
        for arm in arms:
            overrides = run_overrides(arm, seed, out, data_root, extra)
            key = run_key(arm, extra)
            if (seed, key) in done:
                print(
                    f"{arm} seed {seed}: done already (as {done[seed, key]}), skipped", flush=True
                )
                continue
            result = {"arm": arm, "seed": seed, "overrides": overrides, "config": key}
            if arm in FIRST_STAGE:  # the training it starts from (part of its key)
                result["first_stage"] = run_key(FIRST_STAGE[arm], extra)
            result |= train(overrides)
            result["extra"] = list(extra)  # summary rows keep these runs apart
            with open(path, "a") as f:
                f.write(json.dumps(result) + "\n")
            done[seed, key] = arm
            print(
                f"{arm} seed {seed}: video top-1 {result['video_top1']:.3f} "
                f"({result['seconds'] / 60:.1f} min)",
                flush=True,
            )
    return load_results(path)


# --------------------------------------------------------------------------- tables


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}"


def summary_tables(
    results: Sequence[dict[str, Any]],
    key_of: Callable[[str, tuple[str, ...]], str] = run_key,
) -> str:
    """Markdown: one row per arm (every seed), then the NL - plain gap per data condition.

    A row holds the runs that trained what the arm trains today (``key_of``): a run counts for
    every arm that resolves to its training, and a run of an earlier recipe for none (listed
    under the table).
    """
    by_key = {(r["seed"], r["config"]): r for r in results if "config" in r}
    seeds = sorted({r["seed"] for r in results})
    extras = sorted({tuple(r.get("extra") or ()) for r in results} | {()})
    by_arm: dict[str, list[dict[str, Any]]] = {}
    used: set[tuple[int, str]] = set()  # (seed, config key) of the runs in some row
    plain_keys = {arm: key_of(arm, ()) for arm in ARMS}
    for extra in extras:  # a run with extra overrides is a row of its own: "arm + key=value"
        for arm in ARMS:
            key = key_of(arm, extra) if extra else plain_keys[arm]
            if extra and key == plain_keys[arm]:
                continue  # overrides that change nothing: the arm's own row has these runs
            runs = [by_key[s, key] for s in seeds if (s, key) in by_key]
            if runs:
                by_arm[" + ".join([arm, *extra])] = runs
                used |= {(r["seed"], key) for r in runs}
    lines = [
        "| arm | what | params | seeds: held-out video accuracy (%) | mean ± 95% CI | "
        f"took off (>= {100 * TAKE_OFF:.0f}%) | train acc | s / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in by_arm.items():
        arm = label.split(" + ")[0]
        accs = [r["video_top1"] for r in runs]
        mean, half = mean_interval(accs)
        k = sum(a >= TAKE_OFF for a in accs)
        lo, hi = wilson(k, len(accs))
        seed_cells = " / ".join(f"{r['seed']}: {_pct(r['video_top1'])}" for r in runs)
        train = [r["train_acc"] for r in runs if r.get("train_acc") is not None]
        params = f"{runs[0]['params']:,}" if runs[0].get("params") else "?"
        lines.append(
            f"| {label} | {ARMS[arm][0]} | {params} | {seed_cells} | "
            f"{_pct(mean)} ± {_pct(half)} | {k}/{len(accs)} [{_pct(lo)}, {_pct(hi)}] | "
            f"{_pct(statistics.fmean(train)) if train else 'n/a'} | "
            f"{statistics.fmean(r['seconds'] for r in runs):.0f} |"
        )
    left_out = [r for r in results if (r["seed"], r.get("config")) not in used]
    if left_out:
        names = ", ".join(f"{r['arm']} seed {r['seed']}" for r in left_out)
        lines += ["", f"Left out, trained under another recipe or arm definition: {names}."]
    lines += ["", "| data condition | NL mean | plain mean | gap NL - plain ± 95% CI (Welch) |"]
    lines.append("|---|---|---|---|")
    for extra in extras:  # the gap under the same extra overrides only
        for condition, (nl_arm, plain_arm) in CONDITIONS.items():
            a = [r["video_top1"] for r in by_arm.get(" + ".join([nl_arm, *extra]), [])]
            b = [r["video_top1"] for r in by_arm.get(" + ".join([plain_arm, *extra]), [])]
            if not a or not b:
                continue
            gap, half = gap_interval(a, b)
            lines.append(
                f"| {' + '.join([condition, *extra])} | {_pct(statistics.fmean(a))} (n={len(a)}) | "
                f"{_pct(statistics.fmean(b))} (n={len(b)}) | {_pct(gap)} ± {_pct(half)} |"
            )
    return "\n".join(lines)


def _seeds(text: str) -> list[int]:
    """ "0-4" or "0,2,5" (or both: "0-2,7")."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Where Non-local blocks matter (same_colour)")
    parser.add_argument("--out", default="runs/nonlocal_matters", help="results and run folders")
    parser.add_argument(
        "--arms",
        default=",".join(MAIN_ARMS),
        help=f"comma-separated arms (default: all but the diagnostics {','.join(DIAGNOSTIC_ARMS)})",
    )
    parser.add_argument("--seeds", default="0-4", help='e.g. "0-4" or "0,2,5"')
    parser.add_argument("--data-root", default="", help="data sets (default: <out>/data)")
    parser.add_argument("--summary", action="store_true", help="only write the tables")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run")
    args = parser.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"--arms: unknown {unknown}; choose from {list(ARMS)}")
    try:
        seeds = _seeds(args.seeds)
    except ValueError:
        parser.error(f"--seeds: expected e.g. 0-4 or 0,2,5, got {args.seeds!r}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    out = Path(args.out)
    if args.summary:
        results = load_results(out / "results.jsonl")
    else:
        data_root = Path(args.data_root) if args.data_root else None
        results = run_all(arms, seeds, out, extra=args.overrides, data_root=data_root)
    table = summary_tables(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(table + "\n")
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
