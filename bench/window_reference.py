#!/usr/bin/env python3
"""The expected output of the windowed word count benchmark, computed directly (no engine).

Usage: bench/window_reference.py N

Prints window_results, windows, count_sum and digest exactly as peer.WindowWordCount
(bench/flink/src/peer/WindowWordCount.java) and `floe-bench window` print them, from the
definitions in WindowWordCount.java's class comment: word seq of ThroughputWordCount's input
has event time BASE + seq // 1000 - splitmix64(~seq) % 200 and is counted in the 1 s window
holding that time. Pure Python: about 1.4 s per million words.
"""
import sys
from collections import Counter

M = (1 << 64) - 1
BASE_MS = 1_700_000_000_000


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M
    return h


def main():
    if len(sys.argv) != 2 or not sys.argv[1].replace("_", "").isdigit():
        sys.exit("usage: window_reference.py N")
    n = int(sys.argv[1].replace("_", ""))
    vocab = []
    for j in range(10000):
        h = splitmix64(j)
        vocab.append("".join(chr(97 + ((h >> (5 * m)) % 26)) for m in range(3 + h % 8)))
    counts = Counter()
    for seq in range(n):
        ts = BASE_MS + seq // 1000 - splitmix64(~seq & M) % 200
        counts[(vocab[splitmix64(42 + seq) % 10000], ts - ts % 1000 + 1000)] += 1
    digest = 0
    for (word, end), c in counts.items():
        digest = (digest + splitmix64(splitmix64(fnv1a64(word) ^ end) ^ c)) & M
    print("window_results=%d windows=%d count_sum=%d digest=%016x"
          % (len(counts), len({end for _, end in counts}), sum(counts.values()), digest))


if __name__ == "__main__":
    main()
