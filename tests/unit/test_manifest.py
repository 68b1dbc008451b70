"""Manifests: what a tree is, what changed, and what never gets deployed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from rig import paths
from rig.manifest import Manifest, build_manifest, plan


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_manifest_hashes_content_and_skips_litter(tmp_path: Path) -> None:
    root = tree(tmp_path, {"app/main.py": "print(1)", "app/__pycache__/main.cpython-311.pyc": "x", "data/db": "y"})
    manifest = build_manifest(root)
    assert list(manifest.files) == ["app/main.py"]
    entry = manifest.files["app/main.py"]
    assert entry.size == 8
    assert entry.sha256 == hashlib.sha256(b"print(1)").hexdigest()


def test_tree_hash_follows_content_and_mode(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a.py": "1", "b/c.py": "2"})
    first = build_manifest(root)
    assert build_manifest(root).tree_hash == first.tree_hash
    (root / "a.py").write_text("changed")
    assert build_manifest(root).tree_hash != first.tree_hash
    (root / "a.py").write_text("1")
    os.chmod(root / "a.py", 0o755)
    assert build_manifest(root).tree_hash != first.tree_hash


def test_plan_lists_added_changed_removed(tmp_path: Path) -> None:
    root = tree(tmp_path, {"keep.py": "k", "edit.py": "1", "gone.py": "g"})
    deployed = build_manifest(root)
    (root / "edit.py").write_text("2")
    (root / "gone.py").unlink()
    (root / "new.py").write_text("n")
    result = plan(build_manifest(root), deployed)
    assert (result.added, result.changed, result.removed, result.unchanged) == (["new.py"], ["edit.py"], ["gone.py"], 1)
    assert result.upload() == ["edit.py", "new.py"]
    assert plan(deployed, deployed).empty
    assert plan(deployed, None).added == sorted(deployed.files)


def test_json_round_trip(tmp_path: Path) -> None:
    manifest = build_manifest(paths.FIRMWARE_DIR)
    assert "musicbox/__main__.py" in manifest.files
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_symlinks_are_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a.py": "1"})
    (root / "link").symlink_to("/etc/passwd")
    with pytest.raises(ValueError, match="link: symlinks are not deployed"):
        build_manifest(root)
