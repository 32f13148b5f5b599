"""examples/data/ is what scripts/make_example_data.py writes: regenerate into a temp folder and compare."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from .helpers import EXAMPLES


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory, example_script):
    out = tmp_path_factory.mktemp("examples")
    return out, [p.relative_to(out) for p in example_script.write_examples(out)]


def test_committed_examples_are_current(regenerated):
    out, names = regenerated
    for name in names:
        committed, fresh = EXAMPLES / name, out / name
        assert committed.is_file(), f"{committed} is missing: run python scripts/make_example_data.py"
        if name.suffix == ".png" and name.name != "corrupt.png":
            assert np.array_equal(np.array(Image.open(committed)), np.array(Image.open(fresh))), name
        elif name.suffix == ".parquet":
            import datasets

            load = lambda p: datasets.load_dataset("parquet", data_files=str(p), split="train").to_list()  # noqa: E731
            assert load(committed) == load(fresh)
        else:
            assert committed.read_text() == fresh.read_text(), (
                f"{name} is stale: run python scripts/make_example_data.py"
            )


def test_example_images_are_tiny(regenerated):
    _, names = regenerated
    pngs = [EXAMPLES / n for n in names if n.suffix == ".png" and n.name != "corrupt.png"]
    assert pngs and all((p.stat().st_size) < 600 for p in pngs)
    assert Image.open(EXAMPLES / "images" / "red_circle.png").size == (56, 56)
