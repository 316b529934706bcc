"""Warnings that point at the user's line, however deep in gradserve they were raised."""

from __future__ import annotations

import os
import sys
import warnings


def _is_internal(filename: str, _cache: dict[str, bool] = {}) -> bool:  # noqa: B006
    internal = _cache.get(filename)
    if internal is None:
        roots = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                      for name in ("gradserve", "gradserve.engine", "gradserve.server")
                      if (m := sys.modules.get(name)) is not None and m.__file__)
        internal = _cache[filename] = os.path.abspath(filename).startswith(roots)
    return internal


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """warnings.warn, attributed to the innermost frame outside gradserve's packages."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is warn_user's caller
    while frame is not None and _is_internal(frame.f_code.co_filename):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
