"""torch's AVX2 normal fill for float32 (`normal_fill_16_AVX2`), bit for bit, in numpy.

On x86 torch fills 16+ contiguous float32 normals with Box-Muller over 8-wide AVX2 vectors,
taking log and sincos from its avx_mathfun.h (Cephes polynomials in float). Its build
contracts each multiply-then-add of those polynomials into a fused multiply-add; the float
arithmetic below does the same (a float product is exact in double, so a multiply-add in
double rounds once before the rounding to float), which reproduces torch's values exactly:
checked against torch itself for every one of the 2^24 uniforms in both the radius and the
angle place (tests/engine/test_torch_rng.py checks a sample against torch, and every k
against radius_reference and angle_reference, torch's steps written plainly).

Speed: the kernel is about a hundred elementwise passes, so the words are drawn and
transformed in blocks that stay in cache, every pass writes into preallocated buffers, and
the steps that torch does with masks and blends (Cephes' range reduction, the sign and the
sin/cos swap by octant) are done with integer bit operations, because numpy's masked
operations on random masks cost ten times an arithmetic pass. Where a rounding provably
changes nothing (a product of small integers by a short constant, the exact Cody-Waite steps)
the fused steps are merged into one exact double computation.
"""

from __future__ import annotations

import base64
import itertools
import threading
import zlib
from collections.abc import Callable

import numpy as np

from . import mt19937
from .mt19937 import draw_blocks

_f, _d, _i = np.float32, np.float64, np.int32
# rows of 16 normals a block: on one thread 4096 (the buffers, ~120 bytes a pair, stay in
# L2/L3); on several, up to 8192 and no fewer than 2048 (see block_rows)
_BLOCK_ROWS, _THREADED_ROWS, _MIN_ROWS = 4096, 8192, 2048
_LOG_P = tuple(float(_f(c)) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_LOG_P32 = tuple(_f(c) for c in _LOG_P)
_LOG_Q1, _LOG_Q2 = _f(-2.12194440e-4), _f(0.693359375)
_CHEAP_STEPS = 7  # of Horner's 8 in log256_ps, done unfused (see _Kernel.radius)
_SQRTHF_BITS = int(np.array(0.707106781186547524, _f).view(_i))
# Cody-Waite pi/4 in three floats. With j in {0, 2, 4, 6, 8}, j*DP1 and j*DP2 are exact
# floats and x + j*DP1 + j*DP2 is an exact float, so torch's three fused steps round only
# at the last: x + j*(DP1+DP2+DP3), computed exactly in double, then rounded once
_DP = tuple(float(_f(c)) for c in (-0.78515625, -2.4187564849853515625e-4,
                                   -3.77489497744594108e-8))
_DP_SUM = _DP[0] + _DP[1] + _DP[2]  # exact in double (48 bits)
_COS_P = (2.443315711809948e-005, -1.388731625493765e-003, 4.166664568298827e-002)
_SIN_P = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
# rows: cos, sin; the two polynomials in z run side by side as one (2, n) array
_K0, _K1, _K2 = (np.array([[float(_f(c))], [float(_f(s))]])
                 for c, s in zip(_COS_P, _SIN_P, strict=True))
_FOPI = _f(1.27323954473516)
_ANGLE = _f(2.0 * np.pi) * _f(2.0 ** -24)  # 2pi * (k * 2^-24) == (2pi * 2^-24) * k, exactly
_V32 = np.dtype((np.void, 32))  # 8 words: half a row of 16, moved as one item
_BE = np.dtype(">i4")
# the words come as 64-bit draws (first word high); byteswapped, each 32-bit half reads as
# its word in big-endian order, and this mask keeps the low 24 bits of both
_MASK_BE = np.uint64(0xFFFFFF00FFFFFF00)
_SIGN = np.int32(-2**31)
# the k (24 bits) whose radius the unfused steps leave one ulp off, as k << 1 | (1 if one
# ulp low), ascending, stored as zlib-compressed differences (uint32): `python -m
# gradserve.engine.core.normal_avx2` lists them anew; a test checks all k
_LOG_FIXES = np.cumsum(np.frombuffer(zlib.decompress(base64.b64decode(
    "eNotmXd8ztcXx8/3eZI8RGQjISGIkNhKRIgtZogVK0aNIlYrZiVmYlcpYu9Zo/aKalC0Sq0fJWYQO0bt9eP3vs7v"
    "j/v6fr/3nvE545577vMEx5SSmGMiGz3ySK8PIsUbiOx2sot3gCXH89vEOuckabtd5P42kUg3kbCxIn8H2OT5IBHX"
    "KJGvN4m8ChV5f1kk3yRL9sZZ8iRbpHkxkafrRbqliTRcZUnJ/iKLoXPOJRLdQuTCGpEh5dDrYsmQPSLla4hcPypy"
    "N5/I+LoiZ3jv2gGdE0Xmx4m0ZH3KAJG+BUUGjxZ5OAHepyL3Q0Tuwf8kQGR2SZEWAyzJW10kGPxNFoj0WCrSpY/I"
    "i/YiO6NFDg1Xed+niJTwEEmuJVKhm8i62SL9wkXiYkRSPEUqYedJMHfPy/xIbAbzh6sifxYSGfkWeneRtK4ijcri"
    "A2j3Ool0xD9v0Dc1WCSju8iPR0T6eIN9mshnu8iOViKhgdjmLLIV/kk8B/hakvSnJRuhsyEjIbdI2yoit0rjEy+R"
    "WGKSAc8kf/zHfNhMkcx6ItUS8I2fyBz4OkHXf59Is1IiPrNEymDnIzDXRtYVMKUi6z369/cWmVhepAHyPl4UWRDE"
    "s7NIFHJS9otcs0T2IM+vokg4svq54GP40r8FA/59DX/tmtiIf4bkwSb4i3YSyW4t0ri+yH/BX5P5yQVElqDbge8O"
    "+oicw9ZY4vSW+R9ZjwHT/ab42lWkHvo2sk46yQh4cLE4IT9pFzzbRezEuw308xlD8NdH+D2wl9SSXWDbCk8K4zRr"
    "1XzJIeau4at55Fltm8hwZB/Drk+Mq+j7jmdj7FrPyAXe19AfZVjgbMNzHLj6gHsh+pKxdUYlkRPM3y+CLvI9MkDt"
    "GloYucx5IqMgOsqhfwrYBiBnEnnVCkxjsOMSOCeg9yo8XuyJWeyjM8w94TsDLJt4tmN8xdwL+LuQwymNRP6DDYRA"
    "mhCbD+hvh+8i8NWw/CJFwNCStb7MTYWnKBhmY+8I1uOg7YB/JjrIU3L1ADgGQrsaX3gg+xTPd9CGgj+8uEhevhsa"
    "n6OvMDZ4s+YLnkzWv0NGKdZJWxlGzoyDpi36f0VmGjZHsP4cmXnRX4yc74wR68ivQejPbfyHjBTeW7HPj/E+Ev4K"
    "JUSOsGc6wJ9CbLPB0A4bduC3LshYAv5edt2b/vgrkppxkVhlk19LyLfD4OtGflYFYyJ8p9HjS83YA6ZI8PyNjvCi"
    "7Al3jedjYvANfn6HbcXQV8Wh+68n/KNYvwddL/LG4r1pJHmG3vP4fyLf87G9FDEeAba6yGwFbTS81YlnHZMzok9/"
    "MNhYy4b+AZNVmR9LbELRcRv91/BPLLiDoU0iRsfB25H5m8hZhe4nYAqEdx+6r8OzN5ZcI3Y10XUFn06Hz4YPEnmO"
    "ZtRCRii2L+R9D7yZ0DnAmZ/3aSanwFoPeX/xXhi+Z9jdl2TyRb43NDt5t/OcjK5HYN0O9s3Iu0lsU/neBq4s+O+B"
    "uyE4KcXiD4+3j9acRHxdk7j7QZObmHnAF4IdbuBoD+6j4NvJuz/1aiUYfNC7Bx0fwTLV7ANoSyGjOvLc4Q/BjmfE"
    "7SQ0JZifg38qFVdsjZE1ExznsO8kazkFNS6pPB+wfgbcw03s0TObUb+qxqCfk9an99BZ6OyBHavg2wCuMtj+mGcO"
    "3084K0gxyUHOI+YXg6km+uOZ+5X1nti5GNy3iN/vyIlA9lgw2fHxIuYHkt/b0HWJ91Nmz9kV1zIwVYanPXNpyH7D"
    "3EjsbkuuVILnd9ZnIiuCuWg/rQ24S/4A53VGVeQUY+17ZB8Cx2K+58ETDs8P4Mghv1YSp8XwvIZmKfY0D9V8aMB7"
    "a0/lSQzQPE3Gfyd4vgN7PPJe4fezxC0K3nDoKoG1AHwZfL900f1Qgfe36BoP31RiOAa+D4yuCCwHlifQBfN9h/W5"
    "6LVDf4Lv19i4gffR0Fnom8izD/UjAhkLocviuza6r0BbGpxz4f/ByIHHnbVx6J5ichk82/gOsNQfps4Vgy6Qtc48"
    "DzM3hve+zNeBdgv548J8W+SlwZPNfB9z/oj6/xN459h1vGAchpZyJD15PoM+00nPiRCDgRiN5fl1PrUvHP9wHH2J"
    "0Spsv2Apbzf0c7TJGuQ1ZK4N75m8HyQ24/F5FjKfo3cKc+tYX2D2FOMNc2uQeRjcS5m/yPs/yL3JWO+vcc1j12cm"
    "Ix56G3QNmAvDj6nIT0d3M5PH8O5C5iDsX25iwXsN1k5Bf5fcS2HcZj4K3ghoV/GkxAjtmvwC7QFjSxi+N3bYdC0f"
    "/BE2PUNN/bphahU1oAu0XWwaE9rAL9/meRCZQfCcF42h6R3iTf1zVox29IaYuktu7GdsQeYrbPWDthq878EYydws"
    "3lsyPiLnButnWR/vrLXB9C3/Mp/OoLWTTSbGzvptQ/4H3i841A7aUmkOrsrI/J1c80JWFdY7w2ND/3Xec/Oe6KZ5"
    "VRy8g+HxQ/cd5isxR2sjrcw+EI1dCdO/YJMzOrqafgqZ/V10/3xjVz8YHbSsX8ZjU9dMTWQEQtsKjKOQM5FnJHzf"
    "umr/Eg5fjovmRpyb9gVu+GMluTuF+VGs52POlXrwMzJvQHeEUZcRZnAhPwpMk/iebPaUyUtGKO+zGFOoyYHwlWGu"
    "P3I38F4QO7qYnGZ/HiDH39uUx8TPjsxO0Kygdj7m/SDrddHR1UVrwV5GbrBVY+1XdI7hGY8srgBS1PRo8Lo4q+8e"
    "OvR8Xw7NCOTU99b+qTJzh+Btg94dyH3P+yj88Ra6QNZaO2nOZjDqsR+imL/hoz1qBjzdWd9EoEvB88ZVewZz1t1z"
    "0RoTwtxDeH3A9TPjFOMNfP3Mnmdv086Lm12xJfFsjNzJyFzLugX2dTxpe2U2ckbn1XeH8SV7L5FniJfuYWO3OTOT"
    "mKvGszqYHOivZ+KF3COmLphaxvp2ziNnghCFvCJ2PVfHw98fn+QhD35C1xQ3vTN05LsQeLqxPlXUF2av9AXv1/jh"
    "KLnwiRED1qGsDYRnN+tl4QtBXyK8q8j7WNPDgPOXXNobmrz3Y6znXLjEN637lxpUnViXAVdJ+Mra9Zz7jVEhgjrP"
    "viuaX88Ts39M/PfxLO6k7+m8nwB7Y+TE894NLKXBEAl9NO+Bph6ANRvsS+gDH5qeCUz7jDzoepn9C+9xsJaBpiff"
    "f5ozwfQ28I5ET7LdNKnEi/PiNjS/mD6HuQLYmwn20vgtIVjP9TQjn7EXHRVYv03epRsfw7Of+Lii5zM5Vcih/e9N"
    "YwP4z/OehZy7yHhnzjrolyDjGutrXbQudmA+kfcc8uAAz6VguYDMW+jrzncEh8FuU19dtPaZ3iUHv8aB4RM+bIme"
    "me7agxuapqwv4vwfgn8c8A3KpX7pBu/36GsNfX13vVM8dTMbjziAq7Slz5es18WOJGT5I2Mu+MLgH8L838ieS5zL"
    "uWk9Nz2ZqVe/MfIxIvFlLeQ9NX5nzTQKUbz7FFD6YPDWBE87xhHwF4N2AM/pNtVzLr/akQbtIsYWH+2JhjF3zUf7"
    "4DBzHoFnFrK5asoMZOxzaN6tg+43sJFiX+L6Epq57tqfdGZ+aZCegaZv2YM9HxmN6Lu6MVfEXe/Qezz1fmbwlg3W"
    "PHKnd6zhrf7aCMYSxg5zhzH9kKkn5kwlbsmeGnPTE7dmzceu+MrxjDI1C33TRXtYJ76/orAONWcTez8N3gzuNYd5"
    "NgBHADl4DP8PgrYAYyu2PTD9C+uNbFpX3iLjFTRTzR5y13N9Arovg9Mzt5695h47k3xJ4rnM3EPxZ1tGlofWkHRz"
    "n8KxMcShF/Eljb/cPe8Rs6Lo2k8f2YO+Y5dN73GBrD2ytB69N/0DPB619Ow/hd526J2A7Emeet9LA/cAdKyEdx68"
    "VR1611zAfLU8ep93s9SWlswtYf0JICKQOx4/u8IThO45TtormX2+I7/eRQ5is5fJB9Ov8D0Y/Q/N7x7ob4JfY3Jp"
    "7kab2g1/aXRcDNL8742OcWDc7KJ9+H5TyxBWnLUV0N4yZ6T5TcBFz71BxCMLOTZXvectpIZ5sdYF+vMQ/uyle+lf"
    "L703xOGzDPbhGWQPg39GHXoP8K1C9mowVmStvekruXuWsemZ7AHuKsz7W5pTseCtbel546BXem0pbxswJDTGfnI3"
    "P3FaHoWP8KNrNHmA/lOcz73B5wOuydD2rEEtQcZ6m/5G1Jx8LkTe5AHLZmTOE71Lh2NPAjrzscePUlddkePDXLI5"
    "v5AzBvv6QRvtrjk5gvlMzp8dyC6MnQl8J4KjN3oWQL+cuV7YFIysseg6g/3HmNsGzSju9QnQnWd+JDLa4dOh5P8p"
    "dCwEQxZ2NEJHIRM/fBdkalxJ/Z2lDfrusjYTuas4JB3QByEnHZtX4JPjNFgevGcQ385gGm/T+0cz9hui5Cw5EF+X"
    "+IFnIPoG8V0Wvh7w5Dc14f9nSJki+tvJVHyfjI4K2JJDPd7JvegzF7rR0DSDfiJ+Pl9Xa+Qo4rGXwuQw/SJ+7A/d"
    "RvObS1PqB/E5jQ3H+U4jh7ea8wfd4zigfjL3S+Qk0kgEEE9fmqd72HkJ2q3oXgHfkB7wUtyG4sN62ziHV1Bn8OVW"
    "9t/4Uezn2eggcZr1Id+hWUuCxYK1GTgO/USsk9kj3P/D8LeN/Amn+QpF/nrqXGEuGh3XojOvJWdoDrrj76Y0Cgeq"
    "6jnzbhz1AFzT2oF1BvsiVu/9lxpyLuDn0+Us6ZPLkmfo20Ixru5kyaxLljwgsOa3i0U3iH9LS/7s2ErWfHSSiRPQ"
    "2d6SD3PoA7mgfaqsvWxWcUsODWO/g+0zTdQlHNmxriXeXG79nuFrntdK2aU99+wgsI3Ap2vGoP8gNSOG/MH+GazN"
    "pNk+TDyGmLsVeyzDxLUj+5rcjza/2/TW3wC/p6ikL6N/LafnaPVmxABsWe+oXxTr8BTwsTdaEIueBXUP2MijHvD5"
    "k1fNyZls/FyOnFtPrp0w/RSxKk+uvDB9Ob5zQucNc0cw5wTx9SQGl/HTI/zuiZ49yAutje/Jt9XoO8m+G8AIAUsE"
    "/t7pp78xPTO/85HHJ8mVaqYHwK7J4BmMj8aw7uWsv0Hm4bnEXftub95T7XrXjmLvhDA/A/1XwbYSTC2oJ+uhu2x6"
    "G2rCfnLxA7lXjLUV7EHUSEXma5Kn/+DrFtAmgf0MdtVH13zk32EPNuEg/BYf/sFcAPm229xdkFk+jT3FXk9hvhY+"
    "cSdfT+OPSu76u7ipz12ga0gO564Ej6/ebX8gt2aS676mn0DnYXJ2FLpmffktnv7BV/uMe+ac7gqealov7pDXa6FL"
    "5vsmezUDPQnE7Wp9fIsNq8npOuR6IPZXJle+AtsRcFygRsYyz7TsxraN4cSdGCSPxa/IyQFP6nzqYH/yjov67TC9"
    "X8eB5yo1ImYKNPB6k2Nr4V1zDNvgq1xIf6tYxn5ZOoI9hI8qY8tRgvmC+Ac10f1emZw5aPpxDscIsDxkf9cvZMkw"
    "8qmETf/38ID2Hpf2kxfBP8GSFDAEm7tVGUsSMh1SY29pGXHIkrNt7OIL7+/vqV34sBfjFbXiPL5yWUpuU/BfEa8/"
    "iP0xmlhz90ninJ9j8hp/Tcb+lzjCm5wuzh57Qy70IhfCq+q5nwJfDjnpQ80MInY3zX3cW+92RYjvDZ4eCdReYpSF"
    "XdGmH8fPt4lrI3KgAvbb4R+J/Z2ISUX8syQSf+JjB77MBstCYjbM/M5ETfyLfeGLD+J53iSOcdCNYT3aU3uYHC7s"
    "KWC4Si3aj8+LgnfoQmovdWo6++0zje8ldF1E/038Ptzcbbj4b76md8QWxL0esU09UEj+Yk/9lzx8zuXtbnP8Tqyv"
    "EcO34HuObf+0wgZqVir7/xO27Ka+L59G70JO7mVfdX2gvzPHpHvIFWwvEEJtS8IvxDEQbBvBexzcG8j3rRwgZamT"
    "2+Nzy33Oj4scOpednOU19vVMtUlVeNo5mf8obPI/sM4k2A=="
)), "<u4"), dtype=np.int64).astype(_i)
# with a sentinel above every k, so a search never runs off the end
_LOG_FIX_K = np.append(_LOG_FIXES >> 1, 1 << 24).astype(_i)
_LOG_FIX_STEP = np.append(np.where(_LOG_FIXES & 1, 1, -1), 0).astype(_i)
# two filters, by k's low and by its high 16 bits: the first over every place, the second
# over the few it leaves, so that only one place in a few thousand is searched for
# (bool: numpy finds the set places of a bool array several times faster than of a uint8 one)
_LOG_FILTER, _LOG_FILTER_HI = np.zeros((2, 1 << 16), np.bool_)
_LOG_FILTER[_LOG_FIX_K[:-1] & 0xFFFF] = True
_LOG_FILTER_HI[_LOG_FIX_K[:-1] >> 8] = True
_FLIP_OFFSET = np.array([[2 << 13], [0]], _i)  # rows: cos, sin


def _c(value, dtype) -> np.ndarray:
    """A constant operand as a 0-d array of the dtype a scalar would resolve to: numpy
    takes an array operand about a microsecond faster than a scalar, which adds up over
    the kernel's passes (the blocks run on several threads, and this part holds the GIL)."""
    return np.array(value, dtype)


# the kernel's constant operands (see where each is used)
_C_MASK_BE = _c(_MASK_BE, np.uint64)
_C_LOG_P32 = tuple(_c(p, _f) for p in _LOG_P32)
_C_LOG_P64 = tuple(_c(p, _d) for p in _LOG_P)
_C_LOG_Q1, _C_LOG_Q2 = _c(_LOG_Q1, _f), _c(_LOG_Q2, _f)
_C_2_24, _C_ONE, _C_HALF, _C_M2 = (_c(v, _f) for v in (1 << 24, 1, 0.5, -2))
_C_HALF64 = _c(0.5, _d)
_C_ANGLE, _C_DP = _c(_ANGLE, _f), _c(_DP_SUM * 2.0 ** -13, _d)
_C_EXP_BIAS, _C_SQRTHF = _c(_SQRTHF_BITS + (24 << 23), _i), _c(_SQRTHF_BITS, _i)
_C_SIGN = _c(_SIGN, _i)
_C_I = {v: _c(v, _i) for v in (8, 16, 17, 23, 31, 0xFFFF, 0x7FFFFF, 0xE000, 0x2000, 0x1C000)}


class _Kernel:
    """Buffers for one block of h Box-Muller pairs, so each step is one pass with no
    allocation; the radius and the angle words run side by side as (2, h) arrays where a
    step is the same for both."""

    # (rows, dtype) of each buffer, in the order __init__ assigns them
    _LAYOUT = ((2, _i), (2, _i), (2, _f), (2, _f), (1, _i), (1, _i), (1, _i), (1, _f), (1, _f),
               (1, _f), (1, _d), (1, _d), (2, _d), (2, _d), (1, np.intp), (1, np.bool_))
    _BYTES = sum(r * np.dtype(t).itemsize for r, t in _LAYOUT)  # per pair

    def __init__(self, h: int, arena: np.ndarray | None = None) -> None:
        """Buffers for h pairs, carved from `arena` (bytes, at least h * _BYTES) when given:
        blocks of different sizes then reuse one allocation (no fresh pages to fault in)."""
        self.h = h
        arena = np.empty(h * self._BYTES, np.uint8) if arena is None else arena
        views, at = [], 0
        for rows, t in self._LAYOUT:
            size = rows * h * np.dtype(t).itemsize
            a = arena[at:at + size].view(t)
            views.append(a.reshape(rows, h) if rows == 2 else a)
            at += size
        (self.k, self.flip, self.u, self.cs, self.ki, self.jq, self.n, self.e, self.y, self.z,
         self.m64, self.t64, self.t2, self.zx, self.idx, self.hit) = views

    def fill(self, v: np.ndarray, out: np.ndarray, mean: float = 0.0,
             std: float = 1.0) -> None:
        """Rows `out` (h/8, 16) from their h drawn 64-bit values `v` (overwritten), as
        normals of `mean` and `std`."""
        v.byteswap(inplace=True)
        v &= _C_MASK_BE
        # each row's 8 draws: 4 (8 words) for the radii, then 4 for the angles
        np.copyto(self.k.view(_V32), v.view(_V32).reshape(-1, 2).T)
        np.copyto(self.u, self.k.view(_BE), casting="unsafe")
        r = self.radius(self.u[0])
        cs = self.sincos(self.u[1], self.k[1])
        np.multiply(cs, r, out=cs)
        cs.view(_i)[...] ^= self.flip
        if not (_f(mean) == 0 and _f(std) == 1):  # while the values are still in cache
            _affine(cs.reshape(-1), mean, std, self.t2.reshape(-1))
        np.copyto(out.view(_V32).T, cs.view(_V32))

    def radius(self, a: np.ndarray, fix: bool = True) -> np.ndarray:
        """sqrt(-2 log(1 - k/2^24)) with log256_ps, from k as floats (overwritten); `fix`
        False leaves the k of _LOG_FIXES as the unfused steps leave them."""
        e, ix = self.e, a.view(_i)
        y, z, m64, t = self.y, self.z, self.m64, self.t64
        # the places whose k may be one of _LOG_FIXES, by k's low 16 bits
        np.copyto(self.ki, a, casting="unsafe")  # float to int32 is one SIMD pass, to intp not
        np.bitwise_and(self.ki, _C_I[0xFFFF], out=self.idx, casting="unsafe")
        np.take(_LOG_FILTER, self.idx, out=self.hit, mode="clip")
        at = self.hit.nonzero()[0] if fix else self.idx[:0]
        ks = self.ki[at]
        near = _LOG_FILTER_HI[ks >> _C_I[8]]
        at, ks = at[near], ks[near]
        np.subtract(_C_2_24, a, out=a)  # 2^24 (1 - u): exact
        # frexp and Cephes' "x < sqrt(1/2): e -= 1, x += x" in one: subtracting sqrt(1/2)'s
        # bits borrows from the exponent exactly when the mantissa is below it (the 2^-24
        # scale is folded into the exponent)
        ix -= _C_EXP_BIAS
        np.right_shift(ix, _C_I[23], out=self.ki)
        np.copyto(e, self.ki, casting="unsafe")
        ix &= _C_I[0x7FFFFF]
        ix += _C_SQRTHF
        m = a
        m -= _C_ONE
        np.multiply(m, m, out=z)
        # Horner's first seven steps unfused in float32, four times cheaper than a fused
        # step: that changes the radius of a few k (_LOG_FIXES, found by trying all 2^24),
        # which are put right after. A fused step is done in double (a product of floats is
        # exact there, so the step rounds once, on the way back to float), with the casts
        # as passes of their own: a ufunc that mixes float and double operands casts them
        # through a buffer, slower than a separate cast
        np.multiply(m, _C_LOG_P32[0], out=y)
        y += _C_LOG_P32[1]
        for p in _C_LOG_P32[2:_CHEAP_STEPS + 1]:
            y *= m
            y += p
        np.copyto(m64, m)
        for p in _C_LOG_P64[_CHEAP_STEPS + 1:]:
            np.copyto(t, y)
            t *= m64
            t += p
            np.copyto(y, t, casting="same_kind")
        y *= m
        np.multiply(y, z, out=t, dtype=_d)
        np.multiply(e, _C_LOG_Q1, out=y)
        np.add(t, y, out=y, casting="same_kind")
        z *= _C_HALF
        y -= z
        m += y
        e *= _C_LOG_Q2
        m += e
        m *= _C_M2
        r = np.sqrt(m, out=m)
        if at.size:
            where = np.searchsorted(_LOG_FIX_K, ks)  # at most the sentinel's place
            fix = _LOG_FIX_K[where] == ks
            r.view(_i)[at[fix]] += _LOG_FIX_STEP[where[fix]]
        return r

    def sincos(self, x: np.ndarray, kw: np.ndarray) -> np.ndarray:
        """sincos256_ps of 2pi k/2^24 from k as floats (`x`, overwritten) and the
        byteswapped words (`kw`): (cos, sin) as rows of self.cs, their signs in self.flip."""
        jq, n, t = self.jq, self.n, self.t64
        cs, t2, zx = self.cs, self.t2, self.zx
        x *= _C_ANGLE
        # Cephes' octant j = (int(x * 4/pi) + 1) & ~1 is ((k >> 21) + 1) & ~1 for every k
        # (checked for all 2^24); k's top bits sit at bits 13..15 of the byteswapped word,
        # so jq = j << 13
        np.bitwise_and(kw, _C_I[0xE000], out=jq)
        jq += _C_I[0x2000]
        jq &= _C_I[0x1C000]
        # one fused step, its float and double operands mixed in the ufuncs (two passes;
        # the polynomials below chain their steps in double, with casts of their own)
        np.multiply(jq, _C_DP, out=t)
        np.add(t, x, out=x, casting="same_kind")
        np.copyto(zx[1], x)
        z = self.z
        np.multiply(x, x, out=z)
        z64 = zx[0]
        np.copyto(z64, z)
        np.multiply(z64, _K0, out=t2)
        t2 += _K1
        np.copyto(cs, t2, casting="same_kind")
        np.copyto(t2, cs)
        t2 *= z64
        t2 += _K2
        np.copyto(cs, t2, casting="same_kind")
        cs *= z
        np.copyto(t2, cs)
        t2 *= zx  # cos: c*z - z/2; sin: s*x + x
        np.multiply(z64, _C_HALF64, out=t)
        t2[0] -= t
        t2[1] += zx[1]
        np.copyto(cs, t2, casting="same_kind")
        cs[0] += _C_ONE
        # odd octant pairs (j & 2) swap the polynomials: a bitwise select
        ci = cs.view(_i)
        np.left_shift(jq, _C_I[17], out=n)
        n >>= _C_I[31]
        d = self.ki
        np.bitwise_xor(ci[0], ci[1], out=d)
        d &= n
        ci ^= d
        # sign bits: r*cos flips for j in {2, 4} ((j + 2) & 4), r*sin for j in {4, 6} (j & 4)
        np.add(jq, _FLIP_OFFSET, out=self.flip)
        self.flip <<= _C_I[16]
        self.flip &= _C_SIGN
        return cs


def _affine(flat: np.ndarray, mean: float, std: float, t: np.ndarray) -> None:
    """flat = float(flat * std + mean), fused (one rounding) as torch's kernel does; `t` a
    double buffer of flat's size."""
    np.copyto(t, flat)
    t *= _d(_f(std))
    t += _d(_f(mean))
    np.copyto(flat, t, casting="same_kind")


_local = threading.local()


def _kernel(h: int) -> _Kernel:
    """This thread's buffers for a block of h pairs (blocks run on several threads), in one
    allocation that grows to the largest block seen. The kernels over it are kept by size:
    carving a kernel's views costs as much as a small draw's arithmetic."""
    arena = getattr(_local, "arena", None)
    if arena is None or arena.size < h * _Kernel._BYTES:
        arena = _local.arena = np.empty(h * _Kernel._BYTES, np.uint8)
        _local.kernels = {}
    kernels = _local.kernels
    kern = kernels.get(h)
    if kern is None:
        if len(kernels) >= 8:  # a block size and a last block's, per fill size in use
            kernels.clear()
        kern = kernels[h] = _Kernel(h, arena)
    return kern


def block_rows(rows: int, threads: int) -> list[int]:
    """Rows per block. One thread: blocks of _BLOCK_ROWS (cache-sized). Several: blocks of
    up to _THREADED_ROWS (longer numpy loops, so threads contend less for the GIL between
    them), each the remaining rows over twice the threads ("guided" scheduling), so the
    last blocks are small and the threads finish together."""
    if threads <= 1:
        return [min(_BLOCK_ROWS, rows - lo) for lo in range(0, rows, _BLOCK_ROWS)]
    sizes, left = [], rows
    while left:
        size = min(left, max(_MIN_ROWS, min(_THREADED_ROWS, -(-left // (2 * threads)))))
        sizes.append(size)
        left -= size
    return sizes


def _fill_block(v: np.ndarray, o: np.ndarray, mean: float, std: float) -> None:
    """Rows `o` (r, 16) from their 8r drawn 64-bit values `v` (consumed)."""
    _kernel(v.size).fill(v, o, mean, std)


def fill_rows(words: Callable[[int], np.ndarray], rows: int, mean: float, std: float,
              out: np.ndarray | None = None) -> np.ndarray:
    """`rows` rows of 16 float32 normals, torch's normal_fill_16_AVX2 of 16 uniforms each
    (the first 8 give the radii, the next 8 the angles). `words(k)` draws k 64-bit values
    of two words each, the first word high (`CPUGenerator.random64`); they are drawn in
    blocks, in order, and the blocks are transformed on several threads (`draw_blocks`)."""
    out = np.empty((rows, 16), _f) if out is None else out
    # smaller fills: threads would mostly wait for each other
    helpers = mt19937.helpers_now() if rows >= 2 * _THREADED_ROWS else 0
    sizes = block_rows(rows, 1 + helpers)
    starts = [0, *itertools.accumulate(sizes[:-1])]

    def work(i: int, v: np.ndarray) -> None:
        _fill_block(v, out[starts[i]:starts[i] + sizes[i]], mean, std)

    draw_blocks(words, [8 * r for r in sizes], work, helpers)
    return out


def radius_reference(k: np.ndarray) -> np.ndarray:
    """The radius sqrt(-2 log(1 - k/2^24)) of 24-bit k (int32) as torch's log256_ps gives it,
    every multiply-add fused, written plainly: what _Kernel.radius must equal for every k."""
    a = (_f(1 << 24) - k.astype(_f)).view(_i) - (_SQRTHF_BITS + (24 << 23))
    e = (a >> 23).astype(_f)
    m = ((a & 0x7FFFFF) + _SQRTHF_BITS).view(_f) - _f(1)
    z = m * m

    def fma(x, y, c):
        return (x.astype(_d) * y.astype(_d) + np.asarray(c, _d)).astype(_f)

    y = fma(m, _f(_LOG_P[0]), _LOG_P[1])
    for p in _LOG_P[2:]:
        y = fma(y, m, p)
    y = fma(y * m, z, e * _LOG_Q1) - z * _f(0.5)
    return np.sqrt((m + y + e * _LOG_Q2) * _f(-2))


def angle_reference(k: np.ndarray) -> np.ndarray:
    """(cos, sin) of theta = 2pi * k/2^24 (in float) for 24-bit k (int32), as torch's
    sincos256_ps gives them (Cephes' octant, its three-step reduction, both polynomials,
    the select and the signs), every multiply-add fused, written plainly: rows that
    _Kernel.sincos, its signs applied, must equal for every k."""
    def fma(x, y, c):
        return (np.asarray(x, _d) * np.asarray(y, _d) + np.asarray(c, _d)).astype(_f)

    theta = _f(2.0 * np.pi) * (k.astype(_f) * _f(2.0 ** -24))
    j = ((theta * _FOPI).astype(_i) + 1) & ~1  # theta >= 0: no sign to take off first
    y = j.astype(_f)
    x = fma(y, _DP[2], fma(y, _DP[1], fma(y, _DP[0], theta)))
    z = x * x
    c = fma(fma(z, _f(_COS_P[0]), _f(_COS_P[1])), z, _f(_COS_P[2])) * z
    c = fma(c, z, -(z * _f(0.5))) + _f(1)
    s = fma(fma(z, _f(_SIN_P[0]), _f(_SIN_P[1])), z, _f(_SIN_P[2])) * z
    s = fma(s, x, x)
    swap = (j & 2) != 0
    cos, sin = np.where(swap, s, c), np.where(swap, c, s)
    return np.stack([np.where((j + 2) & 4, -cos, cos), np.where(j & 4, -sin, sin)])


def _log_fixes() -> np.ndarray:
    """The k where the kernel's radius, without fixes, is off, and which way (_LOG_FIXES)."""
    step, fixes = 1 << 20, []
    kern = _Kernel(step)
    for lo in range(0, 1 << 24, step):
        k = np.arange(lo, lo + step, dtype=_i)
        np.copyto(kern.u[0], k, casting="unsafe")
        ours, ref = kern.radius(kern.u[0], fix=False).view(_i), radius_reference(k).view(_i)
        off = np.flatnonzero(ours != ref)
        if off.size and np.abs(ours[off] - ref[off]).max() > 1:
            raise AssertionError("an unfused step moved a radius by more than an ulp")
        fixes.append(k[off] << 1 | (ours[off] < ref[off]))
    return np.concatenate(fixes).astype("<i4")


if __name__ == "__main__":  # prints _LOG_FIXES for the source
    deltas = np.diff(_log_fixes(), prepend=0).astype("<u4")
    text = base64.b64encode(zlib.compress(deltas.tobytes(), 9)).decode()
    print("\n".join(f'    "{text[i:i + 88]}"' for i in range(0, len(text), 88)))
