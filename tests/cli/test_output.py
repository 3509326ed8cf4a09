"""Tables and single lines: what a person reads."""

from __future__ import annotations

from rotasign_cli.output import Column, algorithm_label, cell, field, render_fields, render_table, short_id


def test_a_table_aligns_its_columns_under_headings() -> None:
    rows = [{"alias": "release", "gen": 12, "next": None}, {"alias": "nightly-build", "gen": 3, "next": "soon"}]
    columns = (Column("ALIAS", field("alias")), Column("GEN", field("gen")), Column("NEXT", field("next")))
    assert render_table(columns, rows) == (
        "ALIAS          GEN  NEXT\n"
        "release        12   -\n"
        "nightly-build  3    soon"
    )


def test_cells_are_one_line_and_cut_to_their_width() -> None:
    assert cell(None) == cell("") == cell([]) == "-"
    assert cell(["usr_a", "usr_b"]) == "usr_a,usr_b"
    assert cell(True) == "yes" and cell(False) == "no"
    assert cell("two\nlines  here") == "two lines here"
    assert cell("abcdefghij", max_width=5) == "abcd…"
    assert cell(0) == "0"


def test_fields_of_one_object() -> None:
    assert render_fields([("alias", "release"), ("next refresh", None)]) == "alias         release\nnext refresh  -"


def test_labels() -> None:
    assert algorithm_label({"algorithm": "RSA", "key_size": 3072}) == "RSA-3072"
    assert algorithm_label({"algorithm": "ECDSA", "curve": "P-384"}) == "ECDSA P-384"
    assert algorithm_label({"algorithm": "EdDSA", "curve": "Ed25519"}) == "Ed25519"
    assert short_id("0123456789abcdef") == "0123456789ab" and short_id(None) is None
