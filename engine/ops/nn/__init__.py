"""Neural-network ops: convolution, pooling, normalization, embedding, the fused linear and
the losses."""
