"""Shared test helpers: the import path of the package, the fixture file, the `sluiced` binary."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
CLIENT_DIR = TESTS_DIR.parent
REPO_ROOT = TESTS_DIR.parent.parent.parent
VECTORS_PATH = TESTS_DIR / ".." / ".." / ".." / "Tests" / "Fixtures" / "wire-vectors.json"

# The tests run from a checkout without installing the package: `python3 -m unittest discover -s clients/python/tests`.
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))


def sluiced_path() -> Path:
    """The daemon binary: $SLUICED, else <repo>/.build/debug/sluiced."""
    override = os.environ.get("SLUICED")
    return Path(override) if override else REPO_ROOT / ".build" / "debug" / "sluiced"
