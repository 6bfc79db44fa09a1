"""Facts the README states that a reader copies: the Nicolay code's repository is Voltzz9/ml441_assignments
(the paper's reference list spells it m1441, which does not exist)."""
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_nicolay_code_is_cited_by_its_real_repository():
    text = README.read_text()
    assert "m1441_assignments" not in text
    assert text.count("https://github.com/Voltzz9/ml441_assignments") == 2  # the reference and the BibTeX entry
