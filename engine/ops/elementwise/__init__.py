"""Elementwise ops: arithmetic and matmul, the unary and binary families, activations,
copies and casts."""
