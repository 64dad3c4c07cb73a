import json

import pytest

from corpus.cli import main
from eval import report as rep
from eval.passk import score


def _report(model, counts):
    samples = [{"passed": j < c, "result": "passed" if j < c else "failed: x"} for n, c in counts.values() for j in range(n)]
    return {
        "settings": {"model": model, "n": 2},
        "versions": rep.versions(),
        "results": score(counts),
        "verdicts": rep.verdicts(samples),
    }


def test_compare_uses_the_paired_standard_error(tmp_path, capsys):
    # Per-problem pass@1: A = 1, 1, 0.5, 0; B = 0.5, 0.5, 0.5, 0 -> differences 0.5, 0.5, 0, 0:
    # mean 0.25, sample std 0.2887, paired SE 0.1443, z = 1.73 < 1.96: within the noise.
    a = _report("A", {"t0": (2, 2), "t1": (2, 2), "t2": (2, 1), "t3": (2, 0)})
    b = _report("B", {"t0": (2, 1), "t1": (2, 1), "t2": (2, 1), "t3": (2, 0)})
    b["settings"]["temperature"] = 0.8
    c = rep.compare(a, b)
    (row,) = c["rows"]
    assert (row["metric"], row["a"], row["b"]) == ("pass@1", 0.625, 0.375)
    assert row["diff"] == pytest.approx(0.25)
    assert row["se"] == pytest.approx(0.1443375, rel=1e-6)
    assert row["exceeds_noise"] is False
    assert rep.compare(a, b, z=1.5)["rows"][0]["exceeds_noise"] is True

    rep.write(a, tmp_path / "a")
    rep.write(b, tmp_path / "b")
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b" / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "+25.00%" in out and "within noise" in out
    assert "setting temperature differs: A null, B 0.8" in out
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2


def test_report_files(tmp_path):
    r = _report("/models/m", {f"HumanEval/{i}": (4, i % 5) for i in range(10)})
    rep.write(r, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == r
    md = (tmp_path / "report.md").read_text()
    assert "| pass@1 | 50.00% |" in md
    hardest = md.split("## Hardest problems")[1].split("##")[0]
    easiest = md.split("## Easiest problems")[1].split("##")[0]
    assert "| HumanEval/0 | 0/4 |" in hardest and "| HumanEval/4 | 4/4 |" in easiest
    assert (tmp_path / rep.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
