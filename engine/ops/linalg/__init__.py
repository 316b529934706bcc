"""Linear-algebra ops: the named matrix products and torch.linalg's decompositions and
solvers."""
