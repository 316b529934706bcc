"""The autograd core: registry, dtypes and devices, autograd metadata, the graph and its
backward walk, dispatch, grad mode and the backend seam. It defines no op."""
