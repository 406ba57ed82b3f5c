"""nlvideo: video classification with Non-local Neural Networks (Wang et al., CVPR 2018)."""

__version__ = "0.1.0"
