"""DDP on the CPU: two gloo processes train and evaluate like the single-process code paths."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import TINY_TEST_VIEWS

from nlvideo.builtin import generate_builtin_dataset
from nlvideo.cli.eval import main as eval_main
from nlvideo.config import config_from_dict, config_to_dict, load_config
from nlvideo.engine.checkpoint import load_checkpoint
from nlvideo.engine.distributed import all_gather_objects, init_distributed

DATA = {"num_train": 8, "num_val": 6, "seed": 0, "size": 32, "min_frames": 12, "max_frames": 16}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, cfg_dict: dict, result: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    from nlvideo.pipeline import run_training

    metrics = run_training(config_from_dict(cfg_dict))
    Path(f"{result}.{rank}").write_text(json.dumps(metrics))


def test_world_of_one_without_torchrun_environment(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.distributed, info.is_main) == (0, 1, False, True)
    assert all_gather_objects({"a": 1}, info) == [{"a": 1}]


def test_two_gloo_ranks_report_the_same_eval_metrics_as_one_process(tmp_path):
    root = tmp_path / "data"
    generate_builtin_dataset(root, **DATA, workers=1)
    out = tmp_path / "ddp"
    cfg = load_config(
        None,
        [f"synthetic.root={root}"]
        + [f"synthetic.{k}={v}" for k, v in DATA.items()]
        + [
            *TINY_TEST_VIEWS,
            "data.num_clips=2",
            "data.num_workers=0",
            "train.batch_size=4",  # global: 2 clips per rank
            "train.eval_batch_size=4",
            "train.epochs=1",
            "train.device=cpu",
            "train.progress=false",
            "train.log_every=1",
            f"train.output_dir={out}",
        ],
    )
    result = str(tmp_path / "metrics.json")
    mp.spawn(_worker, args=(2, _free_port(), config_to_dict(cfg), result), nprocs=2, join=True)
    ddp = [json.loads(Path(f"{result}.{r}").read_text()) for r in range(2)]
    assert ddp[0] == ddp[1]  # every rank gets the full report
    assert ddp[0]["num_videos"] == ddp[0]["num_evaluated"] == DATA["num_val"]

    # Only rank 0 writes: one train record per global step (8 videos / 4 = 2 steps).
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1 and steps.count(2) >= 1
    assert len(load_checkpoint(out / "last.pt")["rng"]) == 2  # every rank's RNG state

    assert eval_main(["--checkpoint", str(out / "last.pt"), "--out", str(tmp_path / "single")]) == 0
    single = json.loads((tmp_path / "single" / "eval_report.json").read_text())
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy"):
        assert single[key] == pytest.approx(ddp[0][key]), key
    assert single["confusion"] == ddp[0]["confusion"]
    assert single["num_evaluated"] == ddp[0]["num_evaluated"]
