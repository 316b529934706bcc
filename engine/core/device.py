"""`gradserve.device`: torch.device's object, which is also the device string.

A device is a `str` ("cpu", "cuda", "cuda:1") with torch's `type` and `index`, so it goes
wherever a device string goes (`t.to(gs.device("cuda"))`, `session(device=...)`) and every
string comparison keeps working; `t.device` returns one.

    >>> import gradserve as gs
    >>> d = gs.device("cuda", 1)
    >>> d, d.type, d.index, str(d)
    (device(type='cuda', index=1), 'cuda', 1, 'cuda:1')
    >>> gs.device("cpu") == "cpu"
    True
"""

from __future__ import annotations

from .backend import _DEVICE_RE
from .errors import InvalidArgumentError


class device(str):  # noqa: N801  (torch spells it torch.device)
    """A device: `device("cuda:1")`, `device("cuda", 1)`, `device(0)` (cuda:0)."""

    __slots__ = ()

    def __new__(cls, type_or_spec, index: int | None = None):
        if isinstance(type_or_spec, device) and index is None:
            return type_or_spec
        if isinstance(type_or_spec, int) and not isinstance(type_or_spec, bool):
            type_or_spec, index = "cuda", type_or_spec
        text = str(type_or_spec).strip()
        m = _DEVICE_RE.match(text)
        if m is None:
            raise InvalidArgumentError(
                f"Expected one of cpu, cuda device type at start of device string: {text}")
        if index is not None:
            if m.group(2) is not None:
                raise ValueError(f"type (string) must not include an index because index was "
                                 f"passed explicitly: {text}")
            if index < 0:
                raise ValueError(f"Device index must not be negative, got {index}")
            text = f"{m.group(1)}:{int(index)}"
        return super().__new__(cls, text)

    @property
    def type(self) -> str:
        return self.split(":")[0]

    @property
    def index(self) -> int | None:
        _, _, idx = self.partition(":")
        return int(idx) if idx else None

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __reduce__(self):
        return (device, (str(self),))
