"""static: one mask for the whole run (Ma et al. 2025; RLx2's static-sparse baseline)."""

from sparserl.sparsity.methods.base import Method


class Static(Method):
    name = "static"
