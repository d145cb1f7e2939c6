"""A consumer gives back what a batch freed: glibc keeps freed memory in its heaps otherwise."""

import ctypes
import gc
import subprocess
import sys
from pathlib import Path

from refledger.consumers import heap


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_freed_inside_the_heap_goes_back_to_the_system():
    # 160 MB of 4 KB blocks (above pymalloc's 512 bytes, so from malloc), every 64th kept: the free
    # runs between the kept ones lie inside the heap, where freeing alone does not shrink it (in
    # most runs: now and then the allocator has given them back by itself before the call)
    heap.give_back_freed_memory(every_s=0)  # what earlier tests freed would be reused first
    start = _rss_mb()
    blocks = [bytearray(4000) for _ in range(40_000)]
    for block in blocks:
        block[::512] = b"x" * len(block[::512])  # touched, so resident
    assert _rss_mb() - start > 120
    kept = blocks[::64]
    del blocks
    gc.collect()
    heap.give_back_freed_memory(every_s=0)
    after = _rss_mb()
    assert after - start < 40, f"RSS {start:.0f} MB at the start, {after:.0f} MB after giving back"
    assert len(kept) == 625


def test_without_glibc_there_is_nothing_to_give_back(monkeypatch):
    monkeypatch.setattr(heap, "_TRIM", None)
    assert heap.give_back_freed_memory(every_s=0) is False


def test_pages_go_back_at_most_once_a_second(monkeypatch):
    calls = []
    monkeypatch.setattr(heap, "_TRIM", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(heap, "_last", float("-inf"))
    clock = iter([100.0, 100.4, 100.99, 101.0, 101.5, 102.2])
    monkeypatch.setattr(heap, "monotonic", lambda: next(clock))
    assert [heap.give_back_freed_memory() for _ in range(6)] == [True, False, False, True, False, True]
    assert calls == [0, 0, 0]


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mallinfo2() -> _Mallinfo2:
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _Mallinfo2
    return mallinfo2()


_LARGE_BLOCK_AFTER_A_LARGER_ONE = """
import ctypes, sys
from refledger.consumers import heap
from tests.test_heap import _mallinfo2
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    assert heap.keep_large_blocks_apart() is True
libc.free(libc.malloc(31 * 1024 * 1024))
request = _mallinfo2().fordblks + 1024 * 1024  # more than all the heap's free room together
assert request < 31 * 1024 * 1024, request
before = _mallinfo2()
block = libc.malloc(request)
after = _mallinfo2()
print(after.hblks - before.hblks, after.arena > before.arena)
"""


def _large_block_after_a_larger_one(how: str) -> tuple[int, bool]:
    """In a fresh process (a small heap): free a 31 MB block, then ask for more than the heap has
    free; (mappings added, whether the heap grew instead)."""
    out = subprocess.run([sys.executable, "-c", _LARGE_BLOCK_AFTER_A_LARGER_ONE, how], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout.split()
    return int(out[0]), out[1] == "True"


def test_a_batch_sized_block_the_heap_has_no_room_for_gets_a_mapping_not_more_heap():
    # Unfixed, glibc raises its threshold to the size of a mapped block once it is freed: after a
    # 31 MB block is freed, a block of a few megabytes that the heap has no free room for grows the
    # heap, among long-lived small objects, instead of getting a mapping given back when freed.
    assert _large_block_after_a_larger_one("unfixed") == (0, True)
    assert _large_block_after_a_larger_one("fixed") == (1, False)


def test_without_mallopt_large_blocks_are_left_as_they_are(monkeypatch):
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: object())
    assert heap.keep_large_blocks_apart() is False
