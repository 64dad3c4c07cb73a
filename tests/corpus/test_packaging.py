"""The taxonomy data and recipes ship inside the wheel: an installed copy finds them."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_wheel_ships_taxonomies_and_recipes(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ROOT.glob("topics/*.yaml"):
        assert f"corpus/topics/{f.name}" in names
    for f in ROOT.glob("audiences/*.yaml"):
        assert f"corpus/audiences/{f.name}" in names
    assert "corpus/recipes/textbooks.yaml" in names
    # Unpacked on its own (no repo checkout on the path), the package still loads its recipe.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import corpus.recipe as r; x = r.load_recipe('textbooks'); print(len(x.topics.leaves), x.topics.sources[0])"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True, check=True)
    n, source = out.stdout.split()
    assert int(n) > 0 and source.startswith(str(site))
