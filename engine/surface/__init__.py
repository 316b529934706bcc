"""The torch-shaped surface over the core: the Tensor methods (`TensorAPI`), the module
functions, the factories, formatting and the autograd API functions."""
