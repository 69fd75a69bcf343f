"""Approval links are signed over the token, tenant, expiry and question: each one changed, or
the time past the expiry, and the link is refused."""

import uuid

import pytest

from lodestone import approval_links
from lodestone.approval_links import InvalidApprovalLink

KEY = b"k" * 32
TENANT = uuid.UUID("11111111-2222-3333-4444-555555555555")


def fields(link: approval_links.ApprovalLink) -> dict[str, str]:
    return {"tenant": str(link.tenant_id), "expires": str(link.expires), "q": link.question, "sig": link.sig}


def test_a_minted_link_verifies_until_it_expires():
    link = approval_links.mint(KEY, "tt1.abc", TENANT, 2000, "Ship it?")
    assert approval_links.verify(KEY, "tt1.abc", **fields(link), now=1999) == link
    with pytest.raises(InvalidApprovalLink):
        approval_links.verify(KEY, "tt1.abc", **fields(link), now=2000)


@pytest.mark.parametrize(
    "change",
    [
        {"token": "tt1.abd"},
        {"tenant": str(uuid.uuid4())},
        {"expires": "3000"},
        {"q": "Ship everything?"},
        {"sig": "AAAA"},
        {"key": b"j" * 32},
        {"expires": "-1"},
        {"tenant": "not-a-uuid"},
    ],
)
def test_any_change_is_refused(change):
    link = approval_links.mint(KEY, "tt1.abc", TENANT, 2000, "Ship it?")
    given = {"key": KEY, "token": "tt1.abc", **fields(link), **change}
    key, token = given.pop("key"), given.pop("token")
    with pytest.raises(InvalidApprovalLink):
        approval_links.verify(key, token, **given, now=1000)


def test_the_url_names_the_token_and_the_action():
    link = approval_links.mint(KEY, "tt1.a/b", TENANT, 2000, "Ship it?")
    assert link.url("http://api").startswith("http://api/v1/approvals/tt1.a%2Fb?tenant=")
    assert link.url("http://api", "approve").startswith("http://api/v1/approvals/tt1.a%2Fb/approve?")
    assert "q=Ship+it%3F" in link.url("http://api")
