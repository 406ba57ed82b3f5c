"""The commands: exit codes, one-line errors, quick --help, and nlvideo-eval end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import write_checkpoint

from nlvideo.cli.eval import main as eval_main
from nlvideo.cli.train import main as train_main

COMMANDS = ("train", "eval", "infer")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_help_does_not_import_torch(command):
    code = (
        "import sys\n"
        f"from nlvideo.cli.{command} import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch')"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert "usage: nlvideo-" in result.stdout and result.stdout.endswith("no torch\n")


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("eval", ["--checkpoint", "nowhere.pt"], "nlvideo-eval: nowhere.pt: does not exist"),
        ("infer", ["a.mp4", "--checkpoint", "nowhere.pt"], "nlvideo-infer: nowhere.pt: does not"),
        ("train", ["model.name=i3d_nl_tni"], "nlvideo-train: config key model.name"),
    ],
)
def test_a_user_mistake_is_one_line_on_stderr_and_exit_status_2(command, args, expected):
    code = f"import sys\nfrom nlvideo.cli.{command} import main\nsys.exit(main(sys.argv[1:]))"
    result = _python(code, *args)
    assert result.returncode == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert "FutureWarning" not in result.stderr and "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback_of_a_user_mistake():
    code = "import sys\nfrom nlvideo.cli.eval import main\nsys.exit(main(sys.argv[1:]))"
    result = _python(code, "--checkpoint", "nowhere.pt", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert "ValueError: nowhere.pt: does not exist (--checkpoint)" in result.stderr


def test_train_rejects_a_misspelled_key_naming_it(capsys):
    assert train_main(["trian.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "trian" in err and err.count("\n") == 1


def test_print_config_prints_the_resolved_config_and_exits(capsys):
    assert train_main(["--print-config", "optim.lr=0.125"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.125" in out and "name: i3d_nl_tiny" in out


# --------------------------------------------------------------------------- nlvideo-eval


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_builtin, tmp_path_factory):
    """A c2d_tiny checkpoint trained on nothing, for the tiny built-in data set."""
    data, overrides = tiny_builtin
    path = tmp_path_factory.mktemp("eval_cli") / "run" / "best.pt"
    return write_checkpoint(path, data.classes, overrides), data


def test_eval_evaluates_a_checkpoint_on_a_list_with_a_broken_video(
    tiny_checkpoint, tmp_path, capsys
):
    ckpt, data = tiny_checkpoint
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    lines = [*data.val_list.read_text().splitlines()[:4], f"{broken} 0"]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    rc = eval_main(
        [
            "--checkpoint",
            str(ckpt),
            "--list",
            str(listing),
            "--root",
            str(data.root),
            "--classes",  # the list's labels are indices of the built-in class file
            str(data.classes_file),
            "--out",
            str(out),
            "data.num_clips=2",
        ]
    )
    assert rc == 0
    result = json.loads((out / "eval_report.json").read_text())
    assert (result["num_videos"], result["num_evaluated"]) == (5, 4)
    assert result["failed"][0]["path"] == str(broken)
    assert result["num_clips"] == 4 * 2
    assert (out / "confusion.png").is_file()
    assert "broken.mp4" in capsys.readouterr().out


def test_eval_reports_a_missing_checkpoint_without_a_traceback(tmp_path, capsys):
    rc = eval_main(["--checkpoint", str(tmp_path / "nope.pt")])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err


def test_eval_defaults_to_the_built_in_validation_set_of_the_checkpoint(tiny_checkpoint, tmp_path):
    ckpt, _ = tiny_checkpoint
    assert eval_main(["--checkpoint", str(ckpt), "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "eval_report.json").read_text())
    assert (result["num_videos"], result["num_evaluated"], result["num_clips"]) == (8, 8, 8 * 3)


def test_eval_rejects_a_misspelled_override_naming_the_key(tiny_checkpoint, capsys):
    ckpt, _ = tiny_checkpoint
    assert eval_main(["--checkpoint", str(ckpt), "data.num_clipz=2"]) == 2
    assert "num_clipz" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_eval_runs_on_the_configured_device_not_a_default(tiny_checkpoint, capsys):
    ckpt, _ = tiny_checkpoint
    assert eval_main(["--checkpoint", str(ckpt), "train.device=cuda"]) == 2
    assert "train.device='cuda' but CUDA is not available" in capsys.readouterr().err
