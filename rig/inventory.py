"""A lab's benches in one file, for pytest-xdist: one worker per bench.

    # benches.toml
    [[bench]]
    file = "pi4-bench-1.toml"      # relative to this file
    [[bench]]
    file = "sim.toml"
    name = "virtual-pi-b"          # optional: a name of its own (two virtual Pis from one file)

``pytest --inventory benches.toml`` starts as many workers as there are benches; worker N runs
against bench N, with its artifacts in ``ARTIFACTS/<bench name>/``, and xdist spreads the test
files over them. JUnit is merged by xdist; ``rig report ARTIFACTS`` merges the rest.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from .bench import BenchConfig, BenchFileError, load_bench


def load_inventory(file: Path) -> list[BenchConfig]:
    """The benches, in order; raises BenchFileError with a one-line reason."""
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchFileError(f"{file}: inventory not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BenchFileError(f"{file}: cannot read the inventory: {exc}") from None
    entries = raw.get("bench")
    unknown = sorted(set(raw) - {"bench"})
    if unknown:
        raise BenchFileError(f"{file}: [{unknown[0]}]: unknown section (an inventory holds [[bench]] entries)")
    if not isinstance(entries, list) or not entries:
        raise BenchFileError(f'{file}: no [[bench]] entries (each: file = "bench.toml")')
    benches: list[BenchConfig] = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise BenchFileError(f'{file}: [[bench]] {number}: expected file = "bench.toml", got {entry!r}')
        extra = sorted(set(entry) - {"file", "name"})
        if extra:
            raise BenchFileError(f"{file}: [[bench]] {number}: unknown key {extra[0]!r} (known: file, name)")
        bench = load_bench((file.parent / entry["file"]).resolve())
        if isinstance(entry.get("name"), str):
            bench = dataclasses.replace(bench, name=entry["name"])
        benches.append(bench)
    names = [bench.name for bench in benches]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BenchFileError(f"{file}: bench {twice[0]!r} is listed twice; give each entry a name of its own")
    return benches
