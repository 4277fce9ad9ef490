"""SOL's own layers for PyTorch models.

* `CustomLayer`: a layer whose maths are the user's C functions inside an optimized
  network (and the layer's Python `forward` outside one).
* `include_dir()`: where `sol/custom_layer.h` lies, for compiling such functions.
"""

from sol.nn.custom_layer import CustomLayer, include_dir

__all__ = ["CustomLayer", "include_dir"]
