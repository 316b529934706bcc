"""Elementwise ops: arithmetic, the unary and binary families, activations,
copies and casts."""
