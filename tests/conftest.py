"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The folder holding MovieLens-100K's `u.data` and `ml-100k.inter`.

    MovieLens may not be redistributed, so it lives outside the checkout, in ../shared/data;
    `EDGEREC_ML100K` points elsewhere.
    """
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
    folder = Path(os.environ.get("EDGEREC_ML100K") or default)
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {folder}; set EDGEREC_ML100K to its folder")
    return folder
