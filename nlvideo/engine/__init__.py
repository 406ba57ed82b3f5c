"""Engine: the training loop, evaluation, reports, checkpoints, optimisation, DDP, inference.

Everything here takes built objects and plain arguments; ``nlvideo.pipeline`` builds them
from a config.
"""
