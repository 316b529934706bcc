"""Runnable examples (python examples/<name>.py); installed as gradserve.examples."""
