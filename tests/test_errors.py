"""Errors that say why: one line naming the file (or key), its first particulars, exit 2, fast.

Each case runs the real command in a subprocess, as a user would, and reads its stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlvideo.cli.common import MAX_PARTICULARS, format_error

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_folder(tmp_path, monkeypatch):
    """Commands run in an empty folder: default paths (runs/default, data/builtin) must not meet
    a user's own runs (a `python train.py` before the tests made a resume check fire)."""
    monkeypatch.chdir(tmp_path)


def command(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    code = f"import sys\nfrom nlvideo.cli.{name} import main\nrc = main(sys.argv[1:])\n"
    code += "print('modules:', *sorted(m for m in sys.modules if '.' not in m))\nsys.exit(rc)"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=300,
    )


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    first = [i for i, line in enumerate(lines) if line.startswith("nlvideo-")]
    assert first, result.stderr
    return lines[first[0] :]


def test_particulars_follow_the_line_first_few_then_a_count():
    rows = [f"list.txt:{i}: expected 'path label', got 'x'" for i in range(1, 16)]
    text = format_error("nlvideo-train", ValueError("list.txt: 15 bad rows\n" + "\n".join(rows)))
    head, *rest = text.splitlines()
    assert head == "nlvideo-train: list.txt: 15 bad rows"
    assert rest[:MAX_PARTICULARS] == [f"  {r}" for r in rows[:MAX_PARTICULARS]]
    assert rest[MAX_PARTICULARS:] == [f"  ... and {15 - MAX_PARTICULARS} more"]


def test_a_message_with_an_empty_first_line_is_not_cut_to_nothing():
    text = format_error("nlvideo-eval", ValueError("\nweights.pt: 2 tensors missing\n  a.weight"))
    assert text.splitlines() == ["nlvideo-eval: weights.pt: 2 tensors missing", "  a.weight"]


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_missing_or_folder_list_is_reported_before_torch_is_imported(tmp_path, kind):
    path = tmp_path / "trainlist01.txt"
    if kind == "directory":
        path.mkdir()
    val = tmp_path / "val.txt"
    val.write_text("a.mp4 0\n")
    result = command(
        "train", "data.builtin=false", f"data.train_list={path}", f"data.val_list={val}"
    )
    what = "does not exist" if kind == "missing" else "is a directory, expected a file"
    assert error_lines(result) == [f"nlvideo-train: {path}: {what} (data.train_list)"]
    assert "torch" not in result.stdout.split()  # nothing heavy was imported


def test_bad_rows_are_listed_with_their_line_numbers(tmp_path):
    listing = tmp_path / "trainlist01.txt"
    listing.write_text("".join(f"video{i}.mp4\n" for i in range(1, 15)))
    result = command(
        "train", "data.builtin=false", f"data.train_list={listing}", f"data.val_list={listing}"
    )
    head, *rows = error_lines(result)
    assert head.startswith("nlvideo-train: ") and "trainlist01.txt" in head
    assert rows[0].startswith(f"  {listing}:1: ") and "video1.mp4" in rows[0]
    assert len(rows) == MAX_PARTICULARS + 1 and rows[-1] == "  ... and 4 more"


def test_an_unknown_model_is_found_before_any_data_is_generated(tmp_path):
    root = tmp_path / "builtin"
    result = command("train", "model.name=i3d_nl_tinyy", f"synthetic.root={root}")
    (line,) = error_lines(result)
    assert line.startswith("nlvideo-train: config key model.name: unknown model 'i3d_nl_tinyy'")
    assert not root.exists()


def test_weights_that_do_not_fit_name_the_tensors(tiny_builtin, tmp_path):
    from conftest import write_checkpoint

    from nlvideo.engine.checkpoint import load_checkpoint, save_checkpoint

    data, overrides = tiny_builtin
    path = write_checkpoint(tmp_path / "best.pt", data.classes, overrides)
    ckpt = load_checkpoint(path)
    ckpt["model"]["renamed.weight"] = ckpt["model"].pop(next(iter(ckpt["model"])))
    save_checkpoint(path, ckpt)
    result = command("eval", "--checkpoint", str(path))
    head, *particulars = error_lines(result)
    assert head == f"nlvideo-eval: {path}: weights do not fit c2d_tiny"
    assert any("Missing key(s)" in p for p in particulars)
    assert any('"renamed.weight"' in p for p in particulars)
    assert "built-in data set" not in result.stderr  # checked before any data is read


def test_a_corrupt_checkpoint_is_named_with_the_reason(tmp_path):
    path = tmp_path / "best.pt"
    path.write_bytes(b"\x00" * 100)
    head, *particulars = error_lines(command("eval", "--checkpoint", str(path)))
    assert head == f"nlvideo-eval: {path}: checkpoint is corrupt or not a safe torch file"
    assert particulars  # torch's reason


def test_a_folder_given_as_checkpoint_is_a_directory(tmp_path):
    (line,) = error_lines(command("eval", "--checkpoint", str(tmp_path)))
    assert line == f"nlvideo-eval: {tmp_path}: is a directory, expected a file (--checkpoint)"


def test_nlvideo_debug_shows_the_traceback(tmp_path):
    result = command("eval", "--checkpoint", str(tmp_path / "x.pt"), env={"NLVIDEO_DEBUG": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr


@pytest.mark.parametrize("module", ["nlvideo", "nlvideo.pipeline", "nlvideo.metrics"])
def test_importing_nlvideo_prints_nothing_and_imports_scikit_learn_lazily(module):
    code = f"import sys, {module}\nprint('sklearn' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == "False\n"


def test_plain_log_lines_replace_the_progress_bar_off_a_terminal(tiny_builtin, tmp_path, caplog):
    import logging

    from nlvideo.config import load_config
    from nlvideo.pipeline import run_training

    _, overrides = tiny_builtin
    cfg = load_config(
        None,
        [
            *overrides,
            "data.num_workers=0",
            "train.batch_size=2",
            "train.max_steps=2",
            "train.log_every=1",
            "train.progress=true",
            f"train.output_dir={tmp_path}",
        ],
    )
    caplog.set_level(logging.INFO, logger="nlvideo")
    run_training(cfg)  # stderr is not a terminal under pytest
    lines = [m for m in caplog.messages if m.startswith("epoch 1/")]
    epochs = cfg.train.epochs
    assert [line.split(":")[0] for line in lines] == [f"epoch 1/{epochs} step {i}" for i in (1, 2)]
    assert all("loss" in line and "clips/s" in line for line in lines)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2
