"""Long runs: resumes that check the config, mid-epoch checkpoints, kill -9, SIGINT / SIGTERM.

Interrupted runs are real processes stopped by real signals; the signal is sent by the run
itself at a chosen step (a wrapper patches ``Trainer._train_step``), so the tests are exact and
never depend on timing. Every resumed run must end with the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from nlvideo.cli.train import main as train_main
from nlvideo.config import config_from_dict, config_to_dict, load_config
from nlvideo.engine.checkpoint import load_checkpoint, save_checkpoint
from nlvideo.engine.resume import RESUMABLE_KEYS
from nlvideo.pipeline import run_training

ROOT = Path(__file__).resolve().parents[1]

# Sends signal SIG at the start of step AT (on the ranks in RANKS) to itself, or with GROUP=True
# to its whole process group (loader workers included), as Ctrl-C in a terminal does.
SELF_SIGNAL = """
import os, signal, sys
from nlvideo.engine import trainer
step = trainer.Trainer._train_step
def patched(self, batch):
    if self.step == AT - 1 and self.info.rank in RANKS:
        if GROUP:
            os.killpg(os.getpgid(0), signal.SIG)
        else:
            os.kill(os.getpid(), signal.SIG)
    return step(self, batch)
trainer.Trainer._train_step = patched
"""


def run_args(overrides: list[str], out: Path, *extra: str) -> list[str]:
    """i3d_nl_tiny on the tiny built-in set: 4 steps per epoch, 2 epochs (8 steps)."""
    return [
        *overrides,
        "data.num_workers=0",
        "train.batch_size=2",
        "train.eval_batch_size=4",
        "train.epochs=2",
        "train.progress=false",
        "train.log_every=1",
        "optim.warmup_epochs=0.5",
        f"train.output_dir={out}",
        *extra,
    ]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def max_weight_difference(a: Path, b: Path) -> float:
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa if wa[k].numel())


def rows(folder: Path, kind: str | None = None) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if kind is None or r["kind"] == kind]


def assert_no_step_twice(folder: Path) -> None:
    for kind in ("train", "epoch", "eval"):
        steps = [r["step"] for r in rows(folder, kind)]
        assert steps == sorted(set(steps)), (kind, steps)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == sorted(set(steps)), steps  # purged past the checkpoint on resume


def signal_code(sig: str, at: int, ranks: tuple[int, ...] = (0,), group: bool = False) -> str:
    code = SELF_SIGNAL.replace("AT", str(at)).replace("RANKS", str(ranks))
    return code.replace("GROUP", str(group)).replace("SIG", sig)


def self_signalling_run(
    args: list[str], sig: str, at: int, group: bool = False
) -> subprocess.CompletedProcess:
    code = signal_code(sig, at, group=group)
    code += "from nlvideo.cli.train import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        start_new_session=group,  # a process group of its own: the run and its workers
    )


@pytest.fixture(scope="module")
def reference(tiny_builtin, tmp_path_factory) -> Path:
    """An uninterrupted run of the configuration all the interrupted runs use."""
    _, overrides = tiny_builtin
    out = tmp_path_factory.mktemp("reference")
    run_training(load_config(None, run_args(overrides, out, "train.checkpoint_every=3")))
    return out


# --------------------------------------------------------------------------- config checks


def test_resume_under_a_changed_key_is_refused_naming_it_and_touches_nothing(
    tiny_builtin, tmp_path, capsys
):
    _, overrides = tiny_builtin
    assert train_main(run_args(overrides, tmp_path, "train.max_steps=1")) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert train_main(run_args(overrides, tmp_path, "train.max_steps=2", "optim.lr=0.5")) == 2
    err = capsys.readouterr().err
    head, *particulars = err.splitlines()
    assert head.startswith(f"nlvideo-train: {tmp_path}/last.pt: checkpoint was made with another")
    assert "optim.lr changed" in head and f"--resume {tmp_path}/last.pt" in head
    assert "train.output_dir" in head and "Traceback" not in err
    assert particulars == ["  optim.lr: 0.002 -> 0.5"]
    assert snapshot(tmp_path) == before  # not even config.yaml or a TensorBoard file


def test_resume_under_another_world_size_is_refused_naming_both_and_touches_nothing(
    tiny_builtin, tmp_path, capsys
):
    _, overrides = tiny_builtin
    assert train_main(run_args(overrides, tmp_path, "train.max_steps=1")) == 0
    ckpt = load_checkpoint(tmp_path / "last.pt")
    save_checkpoint(tmp_path / "last.pt", {**ckpt, "rng": ckpt["rng"] * 2})  # as 2 ranks write
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert train_main(run_args(overrides, tmp_path, "train.max_steps=2")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nlvideo-train: {tmp_path}/last.pt: checkpoint was written by 2 rank")
    assert "this run has 1" in err and "Traceback" not in err
    assert f"torchrun --nproc_per_node=2 -m nlvideo.cli.train --resume {tmp_path}" in err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_keys_that_may_change_on_resume_are_one_documented_list():
    assert {"train.epochs", "data.num_workers", "train.device", "train.log_every"} <= set(
        RESUMABLE_KEYS
    )
    assert {"train.eval_every", "train.checkpoint_every"} <= set(RESUMABLE_KEYS)
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{key}`" in readme for key in RESUMABLE_KEYS)


def test_a_corrupt_last_checkpoint_says_what_to_do_and_touches_nothing(tiny_builtin, tmp_path):
    _, overrides = tiny_builtin
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 torn by a full disk")
    before = snapshot(tmp_path)
    code = "import sys\nfrom nlvideo.cli.train import main\nsys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, *run_args(overrides, tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    head = result.stderr.splitlines()[0]
    assert head.startswith(f"nlvideo-train: {tmp_path}/last.pt: cannot resume")
    assert "delete it" in head and "--resume" in head and "best.pt" in head
    assert "train.output_dir" in head and "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_resuming_a_checkpoint_of_other_classes_points_to_model_pretrained(
    tiny_builtin, tmp_path, capsys
):
    from conftest import write_checkpoint

    _, overrides = tiny_builtin
    args = run_args(overrides, tmp_path / "run", "model.name=c2d_tiny")
    other = write_checkpoint(tmp_path / "other.pt", ["a", "b", "c"], args)
    assert train_main([*args, f"train.resume={other}"]) == 2
    err = capsys.readouterr().err
    assert f"model.pretrained={other}" in err and "3 classes" in err and "8 classes" in err
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- interrupts


@pytest.mark.parametrize(("sig", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_saves_prints_the_resume_command_and_the_resume_is_exact(
    tiny_builtin, reference, tmp_path, sig, status, capsys
):
    _, overrides = tiny_builtin
    out = tmp_path / "run"
    # SIGTERM goes to the whole process group, loader workers included (they must not die).
    workers = "data.num_workers=1" if sig == "SIGTERM" else "data.num_workers=0"
    args = run_args(overrides, out, "train.checkpoint_every=3", workers)
    result = self_signalling_run(args, sig, at=3, group=sig == "SIGTERM")
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = [x for x in result.stderr.splitlines() if x.startswith("nlvideo-train:")]
    command = f"nlvideo-train --resume {out}/last.pt"
    assert lines == [
        f"nlvideo-train: {sig} at step 3: checkpoint saved to {out}/last.pt; resume with: {command}"
    ]
    assert load_checkpoint(out / "last.pt")["step"] == 3  # the signalled step was finished
    if sig == "SIGTERM":
        return  # the resume is the same as after SIGINT
    assert train_main(command.split()[1:]) == 0  # the printed command, with the stored config
    difference = max_weight_difference(reference / "last.pt", out / "last.pt")
    assert difference <= 1e-6
    assert_no_step_twice(out)
    assert "scored:" in capsys.readouterr().out
    with capsys.disabled():
        print(f"\n{sig}: max weight difference resumed vs uninterrupted: {difference:.3g}")


def test_kill_9_loses_at_most_checkpoint_every_steps_and_the_resume_is_exact(
    tiny_builtin, reference, tmp_path
):
    _, overrides = tiny_builtin
    out = tmp_path / "run"
    args = run_args(overrides, out, "train.checkpoint_every=3")
    result = self_signalling_run(args, "SIGKILL", at=8)  # killed before step 8
    assert result.returncode == -signal.SIGKILL
    assert max(r["step"] for r in rows(out, "train")) == 7  # step 7 was done ...
    assert load_checkpoint(out / "last.pt")["step"] == 6  # ... and lost: < checkpoint_every
    run_training(load_config(None, args))  # the same command again: resumes last.pt
    difference = max_weight_difference(reference / "last.pt", out / "last.pt")
    print(f"\nkill -9: max weight difference resumed vs uninterrupted: {difference:.3g}")
    assert difference <= 1e-6
    assert [r["step"] for r in rows(out, "train")] == list(range(1, 9))
    assert_no_step_twice(out)
    before = rows(out)
    run_training(load_config(None, args))  # a finished run: evaluated again, nothing logged
    assert rows(out) == before


# --------------------------------------------------------------------------- DDP (2 gloo ranks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, cfg_dict: dict, result: str, sig: str, at: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    if sig:  # SIGINT on rank 1 only: both ranks must stop; SIGKILL on both
        ranks = (1,) if sig == "SIGINT" else (0, 1)
        exec(signal_code(sig, at, ranks), {})
    from nlvideo.engine.interrupt import TrainingInterrupted

    try:
        run_training(config_from_dict(cfg_dict))
        outcome = {"status": 0}
    except TrainingInterrupted as e:
        outcome = {"status": e.exit_status, "step": e.step, "command": e.command}
    Path(f"{result}.{rank}").write_text(json.dumps(outcome))


def _spawn(cfg: dict, result: Path, sig: str = "", at: int = 0) -> None:
    mp.spawn(_ddp_worker, args=(_free_port(), cfg, str(result), sig, at), nprocs=2, join=True)


def test_two_gloo_ranks_agree_on_sigint_survive_kill_9_and_resume_exactly(tiny_builtin, tmp_path):
    _, overrides = tiny_builtin
    extra = ("train.batch_size=4", "train.checkpoint_every=2", "train.epochs=3")  # 2 steps/epoch

    def config(out: Path) -> dict:
        return config_to_dict(load_config(None, run_args(overrides, out, *extra)))

    _spawn(config(tmp_path / "reference"), tmp_path / "ref")
    out = tmp_path / "run"
    _spawn(config(out), tmp_path / "int", "SIGINT", at=3)  # only rank 1 is signalled
    outcomes = [json.loads((tmp_path / f"int.{r}").read_text()) for r in range(2)]
    assert [o["status"] for o in outcomes] == [130, 130]
    assert [o["step"] for o in outcomes] == [3, 3]
    assert outcomes[0]["command"].startswith("torchrun --nproc_per_node=2 -m nlvideo.cli.train")
    assert load_checkpoint(out / "last.pt")["step"] == 3
    with pytest.raises(mp.ProcessExitedException):
        _spawn(config(out), tmp_path / "kill", "SIGKILL", at=6)  # killed before step 6
    assert load_checkpoint(out / "last.pt")["step"] == 4  # step 5 lost (checkpoint_every=2)
    _spawn(config(out), tmp_path / "resumed")
    difference = max_weight_difference(tmp_path / "reference" / "last.pt", out / "last.pt")
    print(f"\nDDP SIGINT + kill -9: max weight difference vs uninterrupted: {difference:.3g}")
    assert difference <= 1e-6
    assert [r["step"] for r in rows(out, "train")] == list(range(1, 7))
    assert_no_step_twice(out)


def test_a_mid_epoch_resume_decodes_only_the_batches_after_its_checkpoint(
    tiny_builtin, tmp_path, monkeypatch
):
    from nlvideo.data.dataset import VideoClipDataset

    _, overrides = tiny_builtin
    run_training(load_config(None, run_args(overrides, tmp_path, "train.max_steps=3")))
    read = []
    getitem = VideoClipDataset.__getitem__

    def counting(self, index):
        read.append(index)
        return getitem(self, index)

    monkeypatch.setattr(VideoClipDataset, "__getitem__", counting)
    run_training(load_config(None, run_args(overrides, tmp_path, "train.max_steps=4")))
    assert len(read) == 2  # one batch of 2 videos: step 4, not steps 1-3 again
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4
