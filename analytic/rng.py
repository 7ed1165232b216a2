"""Counter-based random streams: one independent, reproducible stream per instance of a batch.

A draw for instance r depends only on (seed_r, the index of the draw, the position in it), through an
integer hash evaluated as tensor operations. So R instances draw in one batched computation, the
numbers of instance r do not depend on how many other instances run beside it (a batched run equals R
single runs, bitwise), and CPU and GPU draw the same integers.

The hash is the 32-bit ``lowbias32`` finaliser (C. Wellons, "Prospecting for hash functions", 2018)
applied to a mix of seed, draw counter and position. On the CPU it runs in NumPy uint32 (products wrap
mod 2^32 by definition: one operation per step); on another device in torch int64 with the constant
split in 16-bit halves so that no int64 product overflows. The position hash is computed once per size
and the two draws of a 53-bit uniform share one hash call, so a draw costs a few vector operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["Streams", "as_streams"]

_MASK = 0xFFFFFFFF
_M1, _M2 = 0x7FEB352D, 0x846CA68B  # lowbias32 multipliers
_GOLD, _POS = 0x9E3779B1, 0x632BE5AB  # seed multiplier and position offset of the mix
_FEW = 16  # draws of at most this many numbers hash in Python integers (``Streams._bits_few``)
_BLOCK = 1 << 20  # draws of more numbers are hashed block by block on the CPU (``Streams._uniform_blocks``)


def _hash32_int(x: int) -> int:
    """lowbias32 of one Python integer (the draw counter): no tensor dispatch for a scalar."""
    x &= _MASK
    x ^= x >> 16
    x = (x * _M1) & _MASK
    x ^= x >> 15
    x = (x * _M2) & _MASK
    return x ^ (x >> 16)


def _hash32_np(x: np.ndarray) -> np.ndarray:
    """lowbias32 on a uint32 array, in place: uint32 products wrap mod 2^32 exactly (defined behaviour in
    NumPy), so each step is one operation (the CPU path; the same numbers as ``_hash32``)."""
    x ^= x >> 16
    x *= np.uint32(_M1)
    x ^= x >> 15
    x *= np.uint32(_M2)
    x ^= x >> 16
    return x


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for int64 tensors 0 <= x < 2^32 and c < 2^32, without int64 overflow: the
    constant is split in 16-bit halves, x c_lo < 2^48 and only the low 16 bits of x c_hi survive the shift."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK


def _hash32(x: torch.Tensor, masked: bool = False) -> torch.Tensor:
    """lowbias32 on an int64 tensor (the device path: torch has no uint32 shifts); ``masked``: x is
    already in [0, 2^32)."""
    if not masked:
        x = x & _MASK
    x = x ^ (x >> 16)
    x = _mul32(x, _M1)
    x = x ^ (x >> 15)
    x = _mul32(x, _M2)
    return x ^ (x >> 16)


class Streams:
    """R independent random streams (one per instance), advanced together.

    ``Streams([s0, ..., s_{R-1}])``; every draw method returns a leading dimension R and advances the
    shared draw counter, so two Streams with equal seeds called in the same order give equal numbers.
    """

    def __init__(self, seeds: Sequence[int] | torch.Tensor, device="cpu"):
        seeds = torch.as_tensor(seeds, dtype=torch.int64)
        if seeds.dim() != 1 or seeds.numel() == 0:
            raise ValueError(f"seeds must be a non-empty 1-D sequence of integers, got shape "
                             f"{tuple(seeds.shape)}")
        if bool((seeds < 0).any()):
            raise ValueError("seeds must be non-negative integers")
        self.device = torch.device(device)
        self.seeds = seeds.to(self.device)
        self.counter = 0
        # The CPU draws hash in NumPy uint32 (one operation per hash step, products wrap mod 2^32); other
        # devices hash in torch int64 on the device (no host-device traffic). Both give the same integers.
        self._numpy = self.device.type == "cpu"
        # seed_r * GOLD mod 2^32 equals (seed_r mod 2^32) * GOLD mod 2^32: precomputed once
        self._seeds32 = (seeds.numpy() & _MASK).astype(np.uint32) * np.uint32(_GOLD) if self._numpy else None
        self._seeds_int = self._seeds32.tolist() if self._numpy else None
        self._pos_cache: dict[int, object] = {}

    @property
    def R(self) -> int:
        return int(self.seeds.numel())

    def split(self, r: int) -> Streams:
        """The stream of instance r alone, at the same counter (for single-instance comparisons)."""
        out = Streams(self.seeds[r: r + 1].cpu(), device=self.device)
        out.counter = self.counter
        return out

    def to(self, device) -> Streams:
        out = Streams(self.seeds.cpu(), device=device)
        out.counter = self.counter
        return out

    def _pos_hash(self, n: int):
        """hash(position + offset) for positions 0..n-1: the same for every draw, so kept per n."""
        cache = self._pos_cache
        if n not in cache:
            pos = np.arange(n, dtype=np.uint32) + np.uint32(_POS)  # n < 2^32 - POS: no wrap
            cache[n] = (_hash32_np(pos) if self._numpy
                        else _hash32(torch.from_numpy(pos.astype(np.int64)).to(self.device), masked=True))
        return cache[n]

    def _bits(self, n: int, draws: int):
        """(draws, R, n) uniform 32-bit integers for the next ``draws`` draws (counters counter..+draws-1):
        bits[j, r, i] = hash(hash(seed_r * GOLD + hash(counter + j)) ^ hash(i + POS)) mod 2^32.
        uint32 NumPy array on the CPU, int64 tensor on another device."""
        out = self._bits_at(n, range(self.counter, self.counter + draws))
        self.counter += draws
        return out

    def _bits_at(self, n: int, counters, cols: slice | None = None) -> object:
        """``_bits`` for the given draw counters, without advancing the stream (``integers_ahead``); with
        ``cols``, only those positions of the n (NumPy path: a position's bits do not depend on the others)."""
        draw = [_hash32_int(c) for c in counters]
        draws = len(draw)
        if self._numpy:
            R = len(self._seeds_int)
            if draws * R * n <= _FEW and cols is None:
                return np.array(self._bits_few(draw, n), dtype=np.uint32)
            if draws * R <= _FEW:  # the per-instance keys in Python integers, the positions in NumPy
                key = np.array([[_hash32_int(s + d) for s in self._seeds_int] for d in draw], dtype=np.uint32)
            else:
                key = _hash32_np(self._seeds32[None, :] + np.array(draw, dtype=np.uint32)[:, None])
            pos = self._pos_hash(n)
            return _hash32_np(key[:, :, None] ^ (pos if cols is None else pos[cols]))
        d = torch.tensor(draw, dtype=torch.int64).to(self.device)
        key = _hash32(self.seeds.unsqueeze(0) * _GOLD + d.unsqueeze(1))
        return _hash32(key.unsqueeze(2) ^ self._pos_hash(n), masked=True)

    def _bits_few(self, draw: list[int], n: int) -> list:
        """``_bits`` as nested lists of Python ints, for a handful of numbers (at most ``_FEW``): the same
        hash on Python integers (``_hash32_int`` reduces mod 2^32 as uint32 arithmetic wraps), without
        NumPy's per-call overhead (~1 us a call, ~20 calls a draw)."""
        pos = self._pos_hash(n).tolist()
        return [[[_hash32_int(_hash32_int(s + d) ^ ph) for ph in pos] for s in self._seeds_int] for d in draw]

    def _uniform_blocks(self, n: int):
        """``_uniform(n)`` on the CPU as (lo, hi, uniforms of positions lo..hi-1) blocks of at most
        ``_BLOCK`` numbers: the same numbers, with the transient hash arrays (about 6 times the output's
        bytes) bounded by the block, not by the draw (SID draws R x t = 1024 x 16384 indices at once)."""
        c = self.counter
        self.counter += 2
        step = max(1, _BLOCK // max(1, len(self._seeds_int)))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            bits = self._bits_at(n, (c, c + 1), slice(lo, hi))
            yield lo, hi, ((bits[0] >> 5).astype(np.float64) * 67108864.0
                           + (bits[1] >> 6).astype(np.float64)) / 9007199254740992.0

    def _uniform(self, n: int):
        """(R, n) uniforms with 53 random bits: 27 bits of one draw and 26 of the next (float64; a NumPy
        array on the CPU). Every step is exact (integers below 2^53, a power-of-two scale), so the NumPy
        and torch paths give the same numbers."""
        if self._numpy and len(self._seeds_int) * n > _BLOCK:
            out = np.empty((len(self._seeds_int), n), dtype=np.float64)
            for lo, hi, u in self._uniform_blocks(n):
                out[:, lo:hi] = u
            return out
        bits = self._bits(n, 2)
        hi, lo = bits[0] >> 5, bits[1] >> 6  # 27 and 26 bits
        if isinstance(bits, np.ndarray):
            return (hi.astype(np.float64) * 67108864.0 + lo.astype(np.float64)) / 9007199254740992.0
        return (hi.to(torch.float64) * 67108864.0 + lo.to(torch.float64)) / 9007199254740992.0

    def uniform(self, *shape: int, dtype=torch.float64) -> torch.Tensor:
        """(R, *shape) uniforms in [0, 1) with 53 random bits."""
        n = 1
        for s in shape:
            n *= s
        u = torch.as_tensor(self._uniform(n))
        return u.reshape(self.R, *shape).to(dtype)

    def normal(self, *shape: int, dtype=torch.float64) -> torch.Tensor:
        """(R, *shape) standard normals (Box-Muller)."""
        u1 = self.uniform(*shape)
        u2 = self.uniform(*shape)
        z = torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos(2 * torch.pi * u2)
        return z.to(dtype)

    def integers(self, high: int, size: int, replace: bool = True) -> torch.Tensor:
        """(R, size) integers in [0, high); without replacement needs size <= high."""
        if size < 0 or high <= 0:
            raise ValueError(f"need size >= 0 and high > 0, got size={size}, high={high}")
        if replace:
            if self._numpy and len(self._seeds_int) * size > _BLOCK:  # block by block: bounded transients
                out = np.empty((len(self._seeds_int), size), dtype=np.int64)
                for lo, hi, u in self._uniform_blocks(size):
                    out[:, lo:hi] = np.minimum((u * high).astype(np.int64), high - 1)
                return torch.from_numpy(out)
            u = self._uniform(size)
            if isinstance(u, np.ndarray):  # floor(u * high): IEEE product, the same in NumPy and torch;
                # the cast truncates, which is the floor of a non-negative number
                return torch.from_numpy(np.minimum((u * high).astype(np.int64), high - 1))
            return torch.floor(u * high).to(torch.int64).clamp_max(high - 1)
        if size > high:
            raise ValueError(f"cannot draw size={size} distinct integers from {high} without replacement")
        return torch.argsort(self.uniform(high), dim=1)[:, :size]


    # ------------------------------------------------------------------ drawing ahead (algorithms/compiled.py)
    def integers_ahead(self, calls: Sequence[tuple[int, int, bool]]) -> list[torch.Tensor]:
        """The results of ``integers(high, size, replace)`` for each (high, size, replace) of ``calls`` in
        order, bitwise those of the calls made one by one, and the stream advanced as they would advance it.

        Every ``integers`` call consumes two draw counters (the two halves of its 53-bit uniforms), so call j
        reads counters c + 2j and c + 2j + 1 (c the counter now) and its bits at positions 0..size-1 (high
        without replacement): a position's bits do not depend on how many positions a draw has. Calls of
        one width are hashed together (one ``_bits_at`` per width instead of one hash per call) and mapped
        to integers by the arithmetic of ``integers``; without replacement the argsort is per call, on the
        same uniforms. A compiled step draws a chunk of its steps' indices this way, outside its graph."""
        calls = [(int(h), int(s), bool(rep)) for h, s, rep in calls]
        for high, size, rep in calls:
            if size < 0 or high <= 0 or (not rep and size > high):
                raise ValueError(f"invalid draw integers({high}, {size}, replace={rep})")
        c0 = self.counter
        widths: dict[int, list[int]] = {}
        for j, (high, size, rep) in enumerate(calls):
            widths.setdefault(size if rep else high, []).append(j)
        out: list = [None] * len(calls)
        for n, js in widths.items():
            bits = self._bits_at(n, [c0 + 2 * j + h for j in js for h in (0, 1)])
            for m, j in enumerate(js):
                hi, lo = bits[2 * m] >> 5, bits[2 * m + 1] >> 6
                high, size, rep = calls[j]
                if isinstance(bits, np.ndarray):
                    u = (hi.astype(np.float64) * 67108864.0 + lo.astype(np.float64)) / 9007199254740992.0
                    if rep:
                        out[j] = torch.from_numpy(np.minimum((u * high).astype(np.int64), high - 1))
                        continue
                    u = torch.as_tensor(u)
                else:
                    u = (hi.to(torch.float64) * 67108864.0 + lo.to(torch.float64)) / 9007199254740992.0
                    if rep:
                        out[j] = torch.floor(u * high).to(torch.int64).clamp_max(high - 1)
                        continue
                out[j] = torch.argsort(u.reshape(self.R, high).to(torch.float64), dim=1)[:, :size]
        self.counter = c0 + 2 * len(calls)
        return out


def as_streams(generator, R: int, device="cpu") -> Streams:
    """Streams for R instances from: a Streams (checked), an int seed (seeds seed..seed+R-1, so the
    stream of instance r is that of a single run with seed seed + r), a torch.Generator (R seeds drawn
    from it), or None (seed 0)."""
    if isinstance(generator, Streams):
        if generator.R != R:
            raise ValueError(f"generator has {generator.R} streams, the problem has batch {R}")
        return generator.to(device) if generator.device != torch.device(device) else generator
    if generator is None:
        generator = 0
    if isinstance(generator, bool):
        raise TypeError("generator must be an int seed, a torch.Generator or a Streams")
    if isinstance(generator, int):
        if generator < 0:
            raise ValueError(f"generator seed must be >= 0, got {generator}")
        return Streams(torch.arange(R, dtype=torch.int64) + generator, device=device)
    if isinstance(generator, torch.Generator):
        seeds = torch.randint(0, 2**31 - 1, (R,), generator=generator, dtype=torch.int64)
        return Streams(seeds, device=device)
    raise TypeError("generator must be an int seed, a torch.Generator or a Streams, got "
                    f"{type(generator).__name__}")
