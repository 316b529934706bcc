"""Ordinary PyTorch scripts that run with `torch` replaced by `gradserve` (see README,
"Coming from PyTorch"). Each prints the same lines either way; tests/e2e/test_ported.py runs
them with torch, with gradserve in-process and with gradserve inside a session."""
