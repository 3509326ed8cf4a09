"""Request parsing at the edge: one wording per kind of error, the field (and batch index) always named."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.api.parsing import Fields, Params
from chalicelib.domain.keypairs import Status
from chalicelib.errors import RotasignError, ValidationError


def refusal(fn: Any) -> RotasignError:
    with pytest.raises(RotasignError) as raised:
        fn()
    return raised.value


@pytest.mark.parametrize(
    ("body", "read", "field", "message"),
    [
        ([], lambda f: None, None, "The body must be a JSON object."),
        ({"x": 1}, lambda f: None, "x", "Unknown field 'x'."),
        ({}, lambda f: f.text("alias", required=True), "alias", "alias is required."),
        ({"alias": None}, lambda f: f.text("alias"), "alias", "alias must be a string of 1 to 256 characters."),
        ({"alias": "a b"}, lambda f: f.text("alias", pattern=re.compile(r"\w+"), what="a word"), "alias",
         "alias must be a word."),
        ({"status": "paused"}, lambda f: f.choice("status", Status), "status",
         "status must be one of online, offline."),
        ({"status": None}, lambda f: f.choice("status", Status, Status.ONLINE), "status",
         "status must be one of online, offline."),
        ({"flag": "yes"}, lambda f: f.flag("flag", False), "flag", "flag must be true or false."),
        ({"hash": "!!"}, lambda f: f.binary("hash"), "hash", "hash is not valid base64."),
        ({"ids": ["usr_x"]}, lambda f: f.ids("ids", "usr"), "ids", "ids must hold usr_ ids; 'usr_x' is not one."),
        ({"at": "soon"}, lambda f: f.time("at"), "at", "at must be an RFC 3339 time such as 2026-11-29T12:00:00Z."),
    ],
)
def test_each_kind_of_error_has_one_wording_and_names_its_field(
    body: Any, read: Any, field: str | None, message: str
) -> None:
    error = refusal(lambda: read(Fields(body, ("alias", "status", "flag", "hash", "ids", "at"))))
    assert isinstance(error, ValidationError) and error.status == 400
    assert error.message == message
    assert error.details == ({"field": field} if field else {})


def test_a_batch_item_names_its_index() -> None:
    error = refusal(lambda: Fields({"colour": "red"}, ("hash",), index=7))
    assert error.details == {"field": "colour", "index": 7}


def test_null_means_not_given_only_where_allowed() -> None:
    assert Fields({"name": None}, ("name",)).text("name", nullable=True) is None
    assert Fields({}, ("name",)).text("name") is None


@pytest.mark.parametrize(
    ("params", "read", "field"),
    [
        ({"kind": "x"}, lambda p: None, "kind"),
        ({"type": ""}, lambda p: None, "type"),
        ({"type": "dinamic"}, lambda p: p.choice("type", ("static", "dynamic")), "type"),
        ({"limit": "0"}, lambda p: p.page(), "limit"),
        ({"limit": "501"}, lambda p: p.page(), "limit"),
        ({"limit": "²"}, lambda p: p.page(), "limit"),
        ({"from": "yesterday"}, lambda p: p.time("from"), "from"),
        ({"signer": "bob"}, lambda p: p.id("signer", "usr", "a user id"), "signer"),
    ],
)
def test_query_parameters_are_checked(params: dict[str, str], read: Any, field: str) -> None:
    error = refusal(lambda: read(Params(params, ("type", "from", "signer"))))
    assert error.status == 400 and error.details == {"field": field}


def test_the_page_defaults() -> None:
    page = Params({}, ()).page()
    assert (page.limit, page.next) == (50, None)
