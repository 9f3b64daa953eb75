"""Summarise a py-spy ``--format raw`` (folded stacks) file: where the samples are.

.venv/bin/python -m bench.folded FILE [--top 30] [--match dancecat]
"""

from __future__ import annotations

import argparse
import collections
import re


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="only frames whose text contains this")
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.file, encoding="utf-8") as handle:
        lines = handle.readlines()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        n = int(count)
        if "(idle)" in stack or re.search(
            r"\b(wait|select|poll|sleep|_wait_for_tstate_lock)\b", stack.split(";")[-1]
        ):
            continue
        total += n
        for frame in set(stack.split(";")):
            if args.match in frame:
                inclusive[frame] += n
    print(f"{total} busy samples")
    for frame, n in inclusive.most_common(args.top):
        print(f"{100 * n / max(1, total):5.1f}%  {frame}")


if __name__ == "__main__":
    main()
