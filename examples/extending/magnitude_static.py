"""magnitude-static: a new sparsity method in one file (walkthrough: docs/extending.md).

    sparserl train --plugins examples/extending/magnitude_static.py --sparsity magnitude-static
"""

import torch

from sparserl.sparsity.masks import topk_mask
from sparserl.sparsity.methods import Method, register_method, to_param_layout


@register_method
class MagnitudeStatic(Method):
    """A fixed mask of the largest |w| at initialisation, balanced per output unit (whatever mask_init
    says): with k weights kept in a layer of `out` units, every unit keeps the floor(k / out) or
    ceil(k / out) largest |w| of its own fan-in, so all units have the same fan-in up to one (the
    constant fan-in of SRigL, Lasby et al. 2024, without its regrowth). Masked gradients, default 90 %."""

    name = "magnitude-static"
    defaults = {"sparsity": 0.9}

    def initial_mask(self, group, index: int) -> torch.Tensor:
        layer = group.sparse_layers[index]
        size = layer.view(layer.param.detach()).abs()  # (members, out, fan_in)
        rank = size.argsort(-1, descending=True).argsort(-1)  # 0: the unit's own largest |w|
        # every unit's r-th largest weight ranks above any unit's (r+1)-th; |w| decides within a rank
        scores = size / (size.amax() + 1.0) - rank
        return to_param_layout(layer, topk_mask(scores, group.kept(index)))
