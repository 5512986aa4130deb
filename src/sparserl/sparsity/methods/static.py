"""static: one mask for the whole run (Ma et al. 2025; RLx2's static-sparse baseline).

Exactly round(density * n) weights per layer are kept, at random positions (or the largest |w| of
the initialisation with mask_init magnitude), and never change; gradients are masked."""

from sparserl.sparsity.methods.base import Method


class Static(Method):
    """A fixed mask: the base method's masked gradients and nothing else (default level 90 %)."""

    name = "static"
    defaults = {"sparsity": 0.9}
