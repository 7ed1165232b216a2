"""``bilevelbench report --compare A B``: the paper's run and a plug-in's side by side, differences first."""

from __future__ import annotations

import pandas as pd

from bilevelbench.cli import main as cli


def test_compare_puts_the_changed_verdicts_first(tmp_path, capsys):
    a, b, out = tmp_path / "paper", tmp_path / "plugin", tmp_path / "cmp"
    assert cli(["verify", "--claims", "icml21.prop1,icml21.prop2", "--out", str(a), "--no-report"]) == 0
    assert cli(["verify", "--claims", "icml21.prop2", "--out", str(b), "--no-report", "--plugin",
                "bbplugins.defects_icml21:ITD_OFF_BY_ONE"]) == 1
    assert cli(["report", "--compare", str(a), str(b), "--out", str(out)]) == 0
    df = pd.read_csv(out / "compare.csv")
    assert list(df["id"])[:2] == ["icml21.prop2", "icml21.prop1"]
    first = df.iloc[0]
    assert (first["verdict_A"], first["verdict_B"]) == ("holds", "violated") and "verdict" in first["changed"]
    assert df.iloc[1]["changed"] == "only in A"
    assert "icml21.prop2" in (out / "compare.html").read_text() and (out / "compare.md").exists()
    # an existing comparison is replaced only with --force; a folder without results is refused
    capsys.readouterr()
    assert cli(["report", "--compare", str(a), str(b), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli(["report", "--compare", str(a), str(b), "--out", str(out), "--force"]) == 0
    assert cli(["report", "--compare", str(a), str(tmp_path / "none"), "--out", str(tmp_path / "c2")]) == 2
    assert not (tmp_path / "c2").exists()
