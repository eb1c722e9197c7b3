"""IceWarp's VCARDMAP: parsing (with the failing line named) and rendering a directory entry."""

import pytest

from directory_sync.rules.vcard import (
    DEFAULT_VCARD_MAP,
    AttributeValues,
    Placeholder,
    VCardMapError,
    default_vcard_map,
    parse_vcard_map,
    render_vcard,
)

INET_ORG_PERSON = {
    "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
    "cn": ["Lukas Novak"],
    "displayName": ["Lukas Novák"],
    "sn": ["Novák"],
    "givenName": ["Lukas"],
    "title": ["Developer"],
    "o": ["IceWarp"],
    "departmentNumber": ["42"],
    "telephoneNumber": ["+420 123 456 789", "+420 987 654 321"],
    "mail": ["lukas.novak@example.com", "lnovak@example.com"],
}

AD_USER = {
    "CN": ["Jane Smith"],
    "DISPLAYNAME": ["Smith, Jane"],
    "SN": ["Smith"],
    "GIVENNAME": ["Jane"],
    "company": ["Example Inc."],
    "department": ["Sales"],
    "mobile": [],
    "otherMobile": ["", "+1 555 0100"],
    "description": ["Line one\nline two"],
    "proxyAddresses": [
        "X500:/o=Example/ou=Exchange/cn=Recipients/cn=jsmith",
        "smtp:jane@old.example.com",
        "SMTP:jane.smith@example.com",
        "sip:jane@example.com",
    ],
}


def test_default_map_is_the_documented_one() -> None:
    assert DEFAULT_VCARD_MAP.splitlines() == [
        "FN:${displayName,fn}",
        "N:${sn};${givenName}",
        "NOTE:${!description}",
        "TITLE:${!title}",
        "ORG:${company,o};${department}",
        "TEL;TYPE=PREF,WORK,VOICE:${!telephoneNumber}",
        "TEL;TYPE=CELL:${!mobile,otherMobile}",
        "EMAIL;TYPE=INTERNET:${!mail,otherMailbox,proxyAddresses}",
    ]
    assert default_vcard_map() == parse_vcard_map(DEFAULT_VCARD_MAP)


def test_parsing_keeps_items_literals_and_placeholders() -> None:
    vmap = parse_vcard_map("n:${sn};${givenName}\nTEL;TYPE=CELL:${!mobile, otherMobile}")
    first, second = vmap.lines
    assert first.item == "N"
    assert first.parts == (Placeholder(("sn",)), ";", Placeholder(("givenname",)))
    assert first.attributes == {"sn", "givenname"}
    assert second.item == "TEL;TYPE=CELL"
    assert second.parts == (Placeholder(("mobile", "othermobile"), required=True),)


def test_crlf_blank_lines_comments_and_spaces() -> None:
    text = "# the map\r\n\r\n  FN:${displayName}  \r\n   # indented comment\r\nTITLE:${!title}\r\n"
    vmap = parse_vcard_map(text)
    assert [(line.number, line.item) for line in vmap.lines] == [(3, "FN"), (5, "TITLE")]
    assert vmap.lines[0].parts == (Placeholder(("displayname",)),)


def test_the_first_colon_outside_placeholders_separates_item_and_template() -> None:
    vmap = parse_vcard_map("URL:https://intranet/${uid}?a=b:c")
    (line,) = vmap.lines
    assert line.item == "URL"
    assert line.parts == ("https://intranet/", Placeholder(("uid",)), "?a=b:c")


def test_duplicate_items_are_allowed() -> None:
    vmap = parse_vcard_map("TEL:${telephoneNumber}\nTEL:${mobile}")
    assert [line.item for line in vmap.lines] == ["TEL", "TEL"]
    assert vmap.items() == ("TEL",)


def test_attributes_are_the_lower_case_names_the_map_needs() -> None:
    assert default_vcard_map().attributes() == {
        "displayname",
        "fn",
        "sn",
        "givenname",
        "description",
        "title",
        "company",
        "o",
        "department",
        "telephonenumber",
        "mobile",
        "othermobile",
        "mail",
        "othermailbox",
        "proxyaddresses",
    }
    assert parse_vcard_map("# nothing\n").attributes() == frozenset()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "TEL;TYPE=CELL ${mobile}",
            "Line 3 “TEL;TYPE=CELL ${mobile}”: expected ITEM:template (a colon after the item)",
        ),
        ("FN:${displayName", "Line 3 “FN:${displayName”: “${displayName” is not closed: add “}”"),
        ("FN:${sn ${givenName}", "Line 3 “FN:${sn ${givenName}”: “${sn ” is not closed"),
        ("${sn:x", "Line 3 “${sn:x”: “${sn:x” is not closed"),
        ("FN:${}", "Line 3 “FN:${}”: “${}” is empty: write an attribute name inside"),
        ("FN:${!}", "Line 3 “FN:${!}”: “${!}” is empty"),
        ("FN:${ }", "Line 3 “FN:${ }”: “${ }” is empty"),
        ("FN:${a,,b}", "Line 3 “FN:${a,,b}”: “${a,,b}” has an empty attribute name"),
        ("FN:${displayName,!cn}", "“!” must come first, right after “${”: write ${!displayName,cn}"),
        ("FN:${cn!}", "Line 3 “FN:${cn!}”: in “${cn!}” the “!” must come first"),
        ("FN:${1cn}", "Line 3 “FN:${1cn}”: “1cn” in “${1cn}” is not an attribute name"),
        ("FN:${display_name}", "“display_name” in “${display_name}” is not an attribute name"),
        ("PHOTO:${jpegPhoto;binary}", "attribute options such as ;binary are not supported"),
        ("F N:${cn}", "Line 3 “F N:${cn}”: “F N” is not a vCard item name"),
        ("${cn}:${cn}", "“${cn}” is not a vCard item name"),
        (":${cn}", "Line 3 “:${cn}”: the vCard item before “:” is empty"),
        ("TEL;=x:${mobile}", "Line 3 “TEL;=x:${mobile}”: “;=x” is not a vCard parameter"),
    ],
)
def test_every_error_names_its_line(text: str, says: str) -> None:
    with pytest.raises(VCardMapError) as error:
        parse_vcard_map("FN:${displayName}\r\n\r\n" + text + "\r\nN:${sn}")
    assert says in str(error.value)
    assert str(error.value).startswith("Line 3 ")


def test_an_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Line 1"):
        parse_vcard_map("nonsense")


def test_default_map_renders_an_inet_org_person() -> None:
    assert render_vcard(default_vcard_map(), INET_ORG_PERSON) == {
        "FN": "Lukas Novák",
        "N": "Novák;Lukas",
        "TITLE": "Developer",
        "ORG": "IceWarp;",
        "TEL;TYPE=PREF,WORK,VOICE": "+420 123 456 789",
        "EMAIL;TYPE=INTERNET": "lukas.novak@example.com",
    }


def test_default_map_renders_an_active_directory_user() -> None:
    assert render_vcard(default_vcard_map(), AD_USER) == {
        "FN": "Smith\\, Jane",
        "N": "Smith;Jane",
        "NOTE": "Line one\\nline two",
        "ORG": "Example Inc.;Sales",
        "TEL;TYPE=CELL": "+1 555 0100",
        "EMAIL;TYPE=INTERNET": "jane.smith@example.com",
    }


def test_values_can_be_left_unescaped() -> None:
    rendered = render_vcard(default_vcard_map(), AD_USER, escape=False)
    assert rendered["FN"] == "Smith, Jane"
    assert rendered["NOTE"] == "Line one\nline two"


def test_bang_drops_the_line_when_empty() -> None:
    vmap = parse_vcard_map("TITLE:Job: ${!title}\nNOTE:${!description} (from LDAP)")
    assert render_vcard(vmap, {"title": [""], "description": []}) == {}
    assert render_vcard(vmap, {"Title": ["Boss"]}) == {"TITLE": "Job: Boss"}


def test_bang_with_several_names_needs_only_one() -> None:
    vmap = parse_vcard_map("TEL;TYPE=CELL:${!mobile,otherMobile}")
    assert render_vcard(vmap, {"otherMobile": ["+1"]}) == {"TEL;TYPE=CELL": "+1"}
    assert render_vcard(vmap, {}) == {}


def test_first_non_empty_of_several() -> None:
    vmap = parse_vcard_map("FN:${displayName,cn,uid}")
    assert render_vcard(vmap, {"displayName": [" "], "cn": [], "uid": ["jdoe"]}) == {"FN": "jdoe"}
    assert render_vcard(vmap, {"cn": ["John Doe"], "uid": ["jdoe"]}) == {"FN": "John Doe"}


def test_a_line_whose_placeholders_are_all_empty_is_dropped() -> None:
    vmap = parse_vcard_map("N:${sn};${givenName}\nORG:${company,o};${department}")
    assert render_vcard(vmap, {"cn": ["x"]}) == {}
    assert render_vcard(vmap, {"givenName": ["Ann"]}) == {"N": ";Ann"}


def test_a_line_without_placeholders_is_a_constant() -> None:
    vmap = parse_vcard_map("X-SOURCE:LDAP\nNOTE:")
    assert render_vcard(vmap, {}) == {"X-SOURCE": "LDAP"}


def test_with_duplicate_items_the_first_kept_line_wins() -> None:
    vmap = parse_vcard_map("TEL:${!telephoneNumber}\nTEL:${!mobile}\ntel:${!homePhone}")
    assert render_vcard(vmap, {"mobile": ["+2"], "homePhone": ["+3"]}) == {"TEL": "+2"}
    assert render_vcard(vmap, {"telephoneNumber": ["+1"], "mobile": ["+2"]}) == {"TEL": "+1"}


def test_item_names_are_upper_cased() -> None:
    vmap = parse_vcard_map("tel;type=cell:${mobile}")
    assert render_vcard(vmap, {"MOBILE": ["+1"]}) == {"TEL;TYPE=CELL": "+1"}


def test_inserted_values_are_escaped_but_template_separators_are_not() -> None:
    vmap = parse_vcard_map("N:${sn};${givenName}")
    assert render_vcard(vmap, {"sn": ["a;b"], "givenName": ["c\\d"]}) == {"N": "a\\;b;c\\\\d"}


def test_proxy_addresses_prefer_primary_smtp_and_drop_other_prefixes() -> None:
    view = AttributeValues({"proxyAddresses": ["x500:/o=x", "smtp:b@example.com", "SMTP:a@example.com"]})
    assert view.first("PROXYADDRESSES") == "a@example.com"
    assert (
        AttributeValues({"proxyaddresses": ["smtp:b@example.com"]}).first("proxyAddresses") == "b@example.com"
    )
    assert AttributeValues({"proxyAddresses": ["X400:c=US;a= ;p=Example"]}).first("proxyAddresses") == ""


def test_attribute_view_is_case_insensitive_and_takes_single_strings() -> None:
    view = AttributeValues({"Mail": ["a@example.com"], "MAIL": ["b@example.com"], "cn": "Single Value"})
    assert view.values("mail") == ["a@example.com", "b@example.com"]
    assert view.first("CN") == "Single Value"
    assert view.first("missing") == ""
