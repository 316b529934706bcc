"""torch's CPU generator (CPUGeneratorImpl over its mt19937 engine), in numpy.

torch seeds a 32-bit Mersenne Twister with the low 32 bits of the seed (the reference
`init_genrand`), draws 32-bit words from it, and makes a 64-bit draw from two words (the
first is the high half). numpy's MT19937 bit generator runs the same twist and tempering in
C, so this class only owns torch's seeding, its state layout and the Box-Muller cache that
torch keeps beside the engine; the words come out of numpy in bulk.

State: torch's `left_` counts down to the next twist where numpy's `pos` counts up, with
`pos == 625 - left`; a freshly seeded torch engine has `left_ = 1, next_ = 0` (numpy: pos 624).
`get_state()` gives the bytes `torch.get_rng_state()` gives (5056 of them, the same layout),
so a state saved here loads in torch and the other way round.

    >>> g = CPUGenerator(0)
    >>> int(g.random32(1)[0])
    2357136044
"""

from __future__ import annotations

import struct

import numpy as np

N = 624
DEFAULT_SEED = 67280421310721  # c10::detail::default_rng_seed_val, torch's unseeded start
STATE_BYTES = 5056  # sizeof(CPUGeneratorImplState) on 64-bit platforms
_LEGACY = struct.Struct("<QiiQ")  # the_initial_seed, left, seeded, next
_TAIL = struct.Struct("<dddi4xf?3x")  # normal_x, normal_y, normal_rho, normal_is_valid,
#                                      next_float_normal_sample, is_next_float_normal_valid


def _init_genrand(seed32: int) -> np.ndarray:
    key = [seed32]
    for j in range(1, N):
        prev = key[-1]
        key.append((1812433253 * (prev ^ (prev >> 30)) + j) & 0xFFFFFFFF)
    return np.array(key, dtype=np.uint32)


class CPUGenerator:
    """torch.Generator("cpu")'s engine and caches: seeding, draws of 32/64-bit words,
    state bytes. Not thread-safe by itself (torch locks a mutex; gradserve runs one
    session's ops at a time)."""

    __slots__ = ("_bits", "_draws", "_seed", "_fresh", "next_double_normal", "next_float_normal")

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self._attach(np.random.MT19937(0))
        self.manual_seed(seed)

    def _attach(self, bits: np.random.MT19937) -> None:
        # numpy's Generator over the same engine: `integers` over the full uint64 range
        # returns mt19937_next64 (two words, the first high), torch's random64, in one C loop
        self._bits, self._draws = bits, np.random.Generator(bits)

    # -- seeding ------------------------------------------------------------------------
    def manual_seed(self, seed: int) -> CPUGenerator:
        seed = int(seed) % (1 << 64)  # torch takes negative seeds as their two's complement
        self._seed = seed
        self._set_engine(_init_genrand(seed & 0xFFFFFFFF), N, fresh=True)
        self.next_double_normal = self.next_float_normal = None
        return self

    def initial_seed(self) -> int:
        return self._seed

    def _set_engine(self, key: np.ndarray, pos: int, fresh: bool) -> None:
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": pos}}
        self._fresh = fresh

    # -- draws --------------------------------------------------------------------------
    def random32(self, n: int) -> np.ndarray:
        """n successive `random()` words (uint32 values in a uint64 array)."""
        if n <= 0:
            return np.zeros(0, np.uint64)
        self._fresh = False
        return self._bits.random_raw(int(n))

    def random64(self, n: int) -> np.ndarray:
        """n successive `random64()` values: two words each, the first the high half."""
        if n <= 0:
            return np.zeros(0, np.uint64)
        self._fresh = False
        return self._draws.integers(0, 1 << 64, int(n), dtype=np.uint64)

    # -- state --------------------------------------------------------------------------
    def get_state(self) -> bytes:
        """torch's `CPUGeneratorImpl::get_state()` bytes."""
        st = self._bits.state["state"]
        pos = int(st["pos"])
        nxt = 0 if self._fresh else pos
        head = _LEGACY.pack(self._seed, N + 1 - pos, 1, nxt)
        key = np.asarray(st["key"], dtype=np.uint64).astype("<u8").tobytes()
        dn, fn = self.next_double_normal, self.next_float_normal
        tail = _TAIL.pack(0.0, 0.0 if dn is None else dn, 0.0, dn is not None,
                          0.0 if fn is None else fn, fn is not None)
        return head + key + tail

    def set_state(self, data: bytes) -> None:
        """Load `get_state()` bytes (torch's or gradserve's)."""
        data = bytes(data)
        if len(data) != STATE_BYTES:
            raise RuntimeError("Expected either a THGeneratorState of size 5048 or a "
                               "CPUGeneratorImplState of size 5056 but found the input RNG "
                               f"state size to be {len(data)}")
        seed, left, _seeded, nxt = _LEGACY.unpack_from(data, 0)
        if not 1 <= left <= N:
            raise RuntimeError(f"The input RNG state must have left in [1, {N}], got {left}")
        key = np.frombuffer(data, "<u8", N, _LEGACY.size).astype(np.uint32)
        _x, dn, _rho, dn_valid, fn, fn_valid = _TAIL.unpack_from(data, _LEGACY.size + 8 * N)
        self._seed = seed
        self._set_engine(key, N + 1 - left, fresh=left == 1 and nxt == 0)
        self.next_double_normal = dn if dn_valid else None
        self.next_float_normal = fn if fn_valid else None

    @classmethod
    def from_state(cls, data: bytes) -> CPUGenerator:
        gen = cls.__new__(cls)
        gen._attach(np.random.MT19937(0))
        gen.set_state(data)
        return gen
