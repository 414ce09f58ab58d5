"""Where the time goes in py-spy flame graphs: the functions with the most samples of their own.

    python -m bench.profiles docs/profiles/camera-before [--top 12]

Reads each ``*.svg`` that ``py-spy record --format flamegraph`` wrote (every frame is a ``<g>``
with a title ``name (file:line) (N samples, P%)``, its first sample ``fg:x``, its width in
samples ``fg:w`` and its depth as ``y``) and prints, per file, the functions whose own samples
(the frame's less its callees') are largest, lines of one function added together.

py-spy samples every thread, waiting ones included (its idle filter does not catch threads
blocked in a lock, a queue or a selector here), so samples whose own function is one of
``WAITS`` are counted apart as waiting and the shares are of the busy samples: the process's
work. A thread blocked in native code that is not listed (``fsync``, a TLS read) counts as busy.
"""

from __future__ import annotations

import argparse
import html
import itertools
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(
    r'<g><title>(?P<title>[^<]*)</title><rect x="[^"]*" y="(?P<y>\d+(?:\.\d+)?)"[^>]*'
    r'fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
_TITLE = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*)\) \((?P<n>[\d,]+) samples?, [\d.]+%\)$")


#: Functions (or one line of one: ``name (file:line)``) whose own samples are a thread waiting,
#: not working (the leaf of a blocked stack).
WAITS = frozenset(
    {
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
        "Queue.get (queue.py)",
        "_worker (concurrent/futures/thread.py)",
        "EpollSelector.select (selectors.py)",
        "_PollLikeSelector.select (selectors.py)",
        "Client._loop (paho/mqtt/client.py)",
        "BaseEventLoop._run_once (asyncio/base_events.py)",
        # the uploader's lanes wait for a job on a SimpleQueue (C, no Python frame of its own)
        "Lanes._serve (edgeloop_uploader/lanes.py:52)",
        # a blocking HTTP response read: the uploader waiting for the blob service
        "SocketIO.readinto (socket.py)",
    }
)


@dataclass(frozen=True)
class Frame:
    name: str
    line: str
    depth: float
    start: int
    samples: int


def parse_flamegraph(svg: str) -> list[Frame]:
    """The frames of an inferno/py-spy flame graph; ``name`` is ``function (file)``, ``line``
    ``function (file:line)``."""
    frames = []
    for m in _FRAME.finditer(svg):
        title = html.unescape(m["title"])
        t = _TITLE.match(title)
        if t is None:
            continue  # the root ("all")
        where = t["where"].rsplit(":", 1)[0]
        frames.append(
            Frame(
                f"{t['name']} ({where})",
                f"{t['name']} ({t['where']})",
                float(m["y"]),
                int(m["x"]),
                int(m["w"]),
            )
        )
    return frames


def self_samples(frames: list[Frame]) -> tuple[Counter[str], int]:
    """Own samples per function (a frame's samples less its direct callees'), and the total;
    a frame listed by its line in ``WAITS`` counts under that line."""
    by_depth: dict[float, list[Frame]] = {}
    for f in frames:
        by_depth.setdefault(f.depth, []).append(f)
    depths = sorted(by_depth)
    step = min((b - a for a, b in itertools.pairwise(depths)), default=0.0)
    own: Counter[str] = Counter()
    for f in frames:
        children = by_depth.get(f.depth + step, []) if step else []
        inner = sum(c.samples for c in children if f.start <= c.start < f.start + f.samples)
        own[f.line if f.line in WAITS else f.name] += f.samples - inner
    top = by_depth[depths[0]] if depths else []
    return own, sum(f.samples for f in top)


def summary(path: Path, top: int) -> list[str]:
    own, total = self_samples(parse_flamegraph(path.read_text(encoding="utf-8")))
    waiting = sum(n for name, n in own.items() if name in WAITS)
    busy = max(total - waiting, 1)
    lines = [f"{path.stem}: {total} samples, {waiting} waiting; shares of the {total - waiting} busy ones"]
    work = Counter({name: n for name, n in own.items() if name not in WAITS and n > 0})
    for name, n in work.most_common(top):
        lines.append(f"  {100 * n / busy:5.1f}%  {name}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profiles", description=__doc__)
    parser.add_argument("folder", type=Path, help="folder of py-spy flame graph SVGs")
    parser.add_argument("--top", type=int, default=12, help="functions listed per profile")
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("*.svg"))
    if not files:
        parser.error(f"no .svg files in {args.folder}")
    for path in files:
        print("\n".join(summary(path, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
