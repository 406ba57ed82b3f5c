"""nlvideo: video classification with Non-local Neural Networks (Wang et al., CVPR 2018)."""

import warnings

# fvcore (imported by pytorchvideo, which builds our ResNets) calls the deprecated
# torch.jit.script at import time; that FutureWarning is about fvcore, not about anything a
# user of nlvideo can change, so it is silenced for nlvideo and every submodule.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

__version__ = "0.1.0"
