"""LICENSE, CITATION.cff and the SPDX license field agree with each other and the paper."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "papers" / "smci1.0-essd-2022.txt"


def test_license_is_an_spdx_expression_with_its_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert "setuptools>=77" in build  # PEP 639 license expressions need setuptools 77


def test_citation_cites_the_paper(shared_data):
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "Apache-2.0"
    paper = cff["preferred-citation"]
    assert paper["doi"] == "10.5194/essd-14-5267-2022"
    assert (paper["journal"], paper["volume"], paper["year"]) == (
        "Earth System Science Data",
        14,
        2022,
    )
    lines = PAPER.read_text().splitlines()
    assert paper["title"] == lines[0].strip()
    # the author line of the paper, in order (affiliation marks stripped)
    names = [a["family-names"] for a in paper["authors"]]
    authors = lines[2]
    positions = [authors.index(f"{a['given-names']} {a['family-names']}") for a in paper["authors"]]
    assert positions == sorted(positions) and names[:3] == ["Li", "Shi", "Shangguan"]
    assert "10.11888/Terre.tpdc.272415" in PAPER.read_text()
    assert cff["references"][0]["doi"] == "10.11888/Terre.tpdc.272415"
