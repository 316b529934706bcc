"""Indexing: keys as data, getitem and index (with their scatters), gather and scatter."""
