"""The lab's bench inventory (``--inventory``): its mistakes are one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig import paths
from rig.bench import BenchFileError
from rig.inventory import load_inventory


def test_the_example_inventory_names_two_virtual_pis() -> None:
    benches = load_inventory(paths.FIXTURES / "benches" / "inventory.sim.toml")
    assert [b.name for b in benches] == ["virtual-pi-a", "virtual-pi-b"]
    assert all(b.is_sim for b in benches)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[bench]]\nfile = "nope.toml"\n', r"nope\.toml: bench file not found"),
        (f'[[bench]]\nfile = "{paths.SIM_BENCH}"\n[[bench]]\nfile = "{paths.SIM_BENCH}"\n', r"listed twice"),
        ("[lab]\n", r"\[lab\]: unknown section"),
        ("", r"no \[\[bench\]\] entries"),
        (f'[[bench]]\nfile = "{paths.SIM_BENCH}"\nport = 3\n', r"unknown key 'port'"),
        ("[[bench]\n", r"cannot read the inventory"),
    ],
)
def test_inventory_mistakes_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    inventory = tmp_path / "lab.toml"
    inventory.write_text(text)
    with pytest.raises(BenchFileError, match=expected) as caught:
        load_inventory(inventory)
    assert "\n" not in str(caught.value)
