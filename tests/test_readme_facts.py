"""Facts the README and its citation page state that a reader copies: the Nicolay code's repository is
Voltzz9/ml441_assignments (the paper's reference list spells it m1441, which does not exist)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CITING = ROOT / "docs" / "citing.md"


def test_nicolay_code_is_cited_by_its_real_repository():
    assert "docs/citing.md" in README.read_text()  # the README links the citation page
    for page in (README, CITING):
        assert "m1441_assignments" not in page.read_text()
    assert CITING.read_text().count("https://github.com/Voltzz9/ml441_assignments") == 2  # the reference and the BibTeX
