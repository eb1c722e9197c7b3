import pytest
from django.core.exceptions import ValidationError

from icewarp_admin.mailserver.validators import (
    display_domain_name,
    normalize_domain_name,
    normalize_local_part,
    normalize_username,
    split_address,
)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Example.COM", "example.com"),
        (" example.com. ", "example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("MAIL.Bücher.DE", "mail.xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ],
)
def test_domain_names_are_stored_lower_case_ascii(typed: str, stored: str) -> None:
    assert normalize_domain_name(typed) == stored


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Enter a domain name"),
        ("user@example.com", "only the part after the @"),
        ("localhost", "single label"),
        ("exa mple.com", "not a domain name"),
        ("-bad-.com", "not a valid internationalized domain name"),
        ("a" * 64 + ".com", "not a valid internationalized domain name"),
        (".".join(["abcdefghij"] * 25) + ".com", "at most 253"),
        ("10.0.0.1", "IP address"),
    ],
)
def test_bad_domain_names_say_what_to_fix(typed: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        normalize_domain_name(typed)
    assert says in " ".join(error.value.messages)


def test_display_name_is_unicode() -> None:
    assert display_domain_name("xn--bcher-kva.de") == "bücher.de"


@pytest.mark.parametrize("typed", ["John.Smith", "a+b", "x_y-z"])
def test_local_parts_are_lower_cased(typed: str) -> None:
    assert normalize_local_part(typed) == typed.lower()


@pytest.mark.parametrize(
    "typed", ["", "two words", ".leading", "trailing.", "a..b", "x" * 65, 'quo"te', "ümlaut"]
)
def test_bad_local_parts_are_refused(typed: str) -> None:
    with pytest.raises(ValidationError):
        normalize_local_part(typed)


@pytest.mark.parametrize("typed", ["a/b", "..", "a\\b"])
def test_usernames_must_make_safe_folder_names(typed: str) -> None:
    with pytest.raises(ValidationError):
        normalize_username(typed)


def test_split_address() -> None:
    assert split_address("Alice@Bücher.de") == ("alice", "xn--bcher-kva.de")
    with pytest.raises(ValidationError, match="expected one @"):
        split_address("alice")
