"""ModuleList and ModuleDict: containers that register their modules (no forward)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

from ._module import Module


class ModuleList(Module):
    """A list of modules, registered under "0", "1", ...; indexable and iterable.

    >>> layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    >>> len(layers), [n for n, _ in layers.named_parameters()][:2]
    (3, ['0.weight', '0.bias'])
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, idx: int) -> int:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        return idx % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(self._index(idx)), module)

    def __delitem__(self, idx) -> None:
        items = list(self._modules.values())
        del items[idx]
        self._modules.clear()
        for i, m in enumerate(items):
            self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        """Add one module at the end. >>> layers.append(nn.ReLU())"""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add modules at the end. >>> layers.extend([nn.ReLU(), nn.Tanh()])"""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert a module before `index`. >>> layers.insert(0, nn.Identity())"""
        items = list(self._modules.values())
        items.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(items):
            self.add_module(str(i), m)


class ModuleDict(Module):
    """An ordered dict of named modules, registered under their keys.

    >>> heads = nn.ModuleDict({"cls": nn.Linear(4, 2), "reg": nn.Linear(4, 1)})
    >>> list(heads.keys())
    ['cls', 'reg']
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        """The keys, in insertion order. >>> list(heads.keys())"""
        return self._modules.keys()

    def values(self):
        """The modules. >>> list(heads.values())"""
        return self._modules.values()

    def items(self):
        """(key, module) pairs. >>> dict(heads.items())"""
        return self._modules.items()

    def pop(self, key: str) -> Module:
        """Remove and return a module. >>> heads.pop("reg")"""
        return self._modules.pop(key)

    def clear(self) -> None:
        """Remove every module. >>> heads.clear()"""
        self._modules.clear()

    def update(self, modules) -> None:
        """Add (or replace) modules from a mapping or (key, module) pairs.

        >>> heads.update({"aux": nn.Linear(4, 3)})
        """
        pairs = modules.items() if isinstance(modules, (Mapping, OrderedDict)) else modules
        for key, module in pairs:
            self.add_module(str(key), module)
