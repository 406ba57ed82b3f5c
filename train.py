"""Train and evaluate a video classifier (thin wrapper over ``nlvideo.engine``).

Built-in CPU job (generates a small data set once, trains i3d_nl_tiny, prints accuracy)::

    python train.py

A recipe, with overrides::

    python train.py --config configs/kinetics400/i3d_nl5_r50_8x8.yaml data.root=/data/k400

Several GPUs on one machine (DDP; train.batch_size is global)::

    torchrun --nproc_per_node=8 train.py --config configs/kinetics400/i3d_nl5_r50_8x8.yaml

Resume (automatic from <train.output_dir>/last.pt, or explicit)::

    python train.py --config configs/kinetics400/i3d_nl5_r50_8x8.yaml --resume runs/x/last.pt
"""

from __future__ import annotations

from nlvideo.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
