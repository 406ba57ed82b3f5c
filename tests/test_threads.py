"""CPU runs leave the data workers their cores: intra-op threads = cores - workers (>= 1)."""

from __future__ import annotations

import pytest
import torch

from nlvideo import pipeline
from nlvideo.config import load_config
from nlvideo.engine import threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cores", "workers", "world", "expected"),
    [(2, 1, 1, 1), (2, 0, 1, 2), (16, 4, 1, 12), (16, 4, 2, 4), (2, 4, 1, 1), (1, 0, 1, 1)],
)
def test_auto_threads_are_the_cores_the_workers_leave(cores, workers, world, expected):
    assert threads.auto_cpu_threads(cores, workers, world) == expected


def test_auto_uses_this_process_affinity(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 3)
    assert threads.set_cpu_threads(0, num_workers=1) == 2
    assert torch.get_num_threads() == 2


def test_an_explicit_count_wins_and_omp_num_threads_is_respected(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert threads.set_cpu_threads(3, num_workers=1) == 3 and torch.get_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(5)
    assert threads.set_cpu_threads(0, num_workers=1) == 5  # left as the user set it
    assert threads.set_cpu_threads(2, num_workers=1) == 2  # train.cpu_threads > 0 still wins


def test_a_cpu_training_run_sets_its_threads_before_building(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 6)
    seen = []

    def stop(cfg, info):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop before data work")

    monkeypatch.setattr(pipeline.jobs, "build_training", stop)
    cfg = load_config(None, ["train.device=cpu", "data.num_workers=2", "train.output_dir=/x"])
    with pytest.raises(RuntimeError, match="stop before data work"):
        pipeline.run_training(cfg)
    assert seen == [4]


def test_negative_threads_are_a_config_error():
    with pytest.raises(ValueError, match=r"train\.cpu_threads: expected >= 0"):
        load_config(None, ["train.cpu_threads=-1"])
