"""Shape ops: views (reshape, permute, expand, ...) and rearrangements (split, flip, roll,
repeat, ...)."""
