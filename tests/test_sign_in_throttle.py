"""Console staff sign-in throttling (django-axes at /login/): lockouts per user name and per address, the
lockout page, one log line per failure, and System → Sign-in lockouts where administrators lift them."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import Group as Role
from django.test import Client
from django.utils import timezone

from icewarp_admin.mailserver import lockout_selectors
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.roles import ADMINISTRATORS, HELPDESK
from icewarp_admin.mailserver.services.accounts import create_account, set_account_password
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "not-the-Passw0rd-42"
LOCKOUTS = "/system/sign-in-lockouts/"


@pytest.fixture
def console_log() -> Iterator[io.StringIO]:
    """What the configured console handler writes (formatter and filters included) while the test runs."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.fixture
def alice(make_user: Callable[..., object]) -> object:
    return make_user("alice", ADMINISTRATORS)


def sign_in(username: str, password: str, *, address: str = "127.0.0.1") -> tuple[Client, int]:
    client = Client(REMOTE_ADDR=address)
    response = client.post("/login/", {"username": username, "password": password})
    return client, response.status_code


def signed_in(client: Client) -> bool:
    return client.get("/domains/").status_code == 200


def test_fifty_wrong_passwords_lock_the_user_out_and_each_failure_is_one_log_line(
    alice: object, console_log: io.StringIO
) -> None:
    for _ in range(50):
        assert sign_in("alice", WRONG)[1] in (200, 429)
    client, status = sign_in("alice", PASSWORD)
    assert status == 429 and not signed_in(client)
    page = client.post("/login/", {"username": "alice", "password": PASSWORD}).content.decode()
    assert "Sign-in locked" in page and "Try again after" in page and "alice" in page

    lines = console_log.getvalue().splitlines()
    failures = [line for line in lines if re.search(r"AXES: (New|Repeated) login failure by", line)]
    assert len(failures) == 52, "\n".join(lines)  # 50 wrong, then the right one twice while locked
    assert all('user="alice" address=127.0.0.1 path="/login/"' in line for line in failures)
    assert any('Locking out user="alice"' in line for line in lines)
    assert all(
        re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", line) for line in lines
    )  # no tracebacks
    assert WRONG not in console_log.getvalue() and PASSWORD not in console_log.getvalue()


def test_below_the_limit_the_right_password_still_signs_in(alice: object) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in("alice", WRONG)[1] == 200  # the form again, with its error
    client, status = sign_in("alice", PASSWORD)
    assert status == 302 and signed_in(client)


def test_one_address_trying_many_user_names_is_locked_out_for_all_of_them(
    alice: object, make_user: Callable[..., object]
) -> None:
    make_user("bob", HELPDESK)
    for number in range(settings.AXES_FAILURE_LIMIT):
        sign_in(f"guess{number}", WRONG, address="192.0.2.7")
    assert sign_in("alice", PASSWORD, address="192.0.2.7")[1] == 429
    assert sign_in("bob", PASSWORD, address="192.0.2.7")[1] == 429
    client, status = sign_in("alice", PASSWORD, address="192.0.2.8")
    assert status == 302 and signed_in(client)


def test_one_user_name_tried_from_many_addresses_is_locked_out_everywhere(
    alice: object, make_user: Callable[..., object]
) -> None:
    make_user("bob", HELPDESK)
    for number in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", WRONG, address=f"198.51.100.{number + 1}")
    assert sign_in("alice", PASSWORD, address="203.0.113.9")[1] == 429
    client, status = sign_in("bob", PASSWORD, address="198.51.100.1")
    assert status == 302 and signed_in(client)


def test_an_administrator_sees_the_lockout_and_lifts_it(
    alice: object, admin: Client, console_log: io.StringIO
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", WRONG, address="192.0.2.50")
    assert sign_in("alice", PASSWORD, address="192.0.2.51")[1] == 429

    assert f'href="{LOCKOUTS}"' in admin.get("/domains/").content.decode()  # in the sidebar
    page = admin.get(LOCKOUTS).content.decode()
    assert "<code>alice</code>" in page and "Locked" in page and "192.0.2.50" in page
    assert 'aria-label="Lift the lockout of user name alice"' in page

    response = admin.post(LOCKOUTS, {"kind": "user", "value": "alice"}, follow=True)
    assert "Lifted: the user name alice may sign in again." in response.content.decode()
    assert not AccessAttempt.objects.filter(username="alice").exists()
    assert "Sign-in lockout lifted: user name 'alice' by user-administrator" in console_log.getvalue()
    client, status = sign_in("alice", PASSWORD, address="192.0.2.50")
    assert status == 302 and signed_in(client)


def test_an_administrator_lifts_the_lockout_of_an_address(alice: object, admin: Client) -> None:
    for number in range(settings.AXES_FAILURE_LIMIT):
        sign_in(f"guess{number}", WRONG, address="192.0.2.60")
    assert sign_in("alice", PASSWORD, address="192.0.2.60")[1] == 429
    assert "Address <code>192.0.2.60</code>" in admin.get(LOCKOUTS).content.decode()
    admin.post(LOCKOUTS, {"kind": "address", "value": "192.0.2.60"})
    client, status = sign_in("alice", PASSWORD, address="192.0.2.60")
    assert status == 302 and signed_in(client)


def test_lifting_with_nothing_named_says_what_to_fix(admin: Client) -> None:
    AccessAttempt.objects.create(
        username="keep", ip_address="192.0.2.70", user_agent="t", failures_since_start=1
    )
    response = admin.post(LOCKOUTS, {"kind": "user", "value": "  "})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert AccessAttempt.objects.filter(
        username="keep"
    ).exists()  # axes' reset() of nothing resets everything


@pytest.mark.parametrize("role", ["helpdesk", "operator"])
def test_helpdesk_and_operators_neither_see_nor_lift_lockouts(
    alice: object, role: str, client_for: Callable[[str | None], Client]
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", WRONG)
    client = client_for(role)
    assert LOCKOUTS not in client.get("/domains/").content.decode()
    assert client.get(LOCKOUTS).status_code == 403
    assert client.post(LOCKOUTS, {"kind": "user", "value": "alice"}).status_code == 403
    assert sign_in("alice", PASSWORD)[1] == 429


def test_only_administrators_hold_the_lockout_permissions() -> None:
    granted = {
        role.name: sorted(
            role.permissions.filter(content_type__app_label="axes").values_list("codename", flat=True)
        )
        for role in Role.objects.all()
    }
    assert granted == {
        "Administrators": ["delete_accessattempt", "view_accessattempt"],
        "Helpdesk": [],
        "Operators": [],
    }


def test_mail_users_failures_at_me_are_not_counted_by_the_console_throttle(
    alice: object, domain: Domain
) -> None:
    account = create_account(domain=domain, username="una")
    set_account_password(account=account, raw_password="Self-Passw0rd-1")
    mail_user = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        assert mail_user.post("/me/", {"address": "una@example.com", "password": WRONG}).status_code == 200
    assert not AccessAttempt.objects.exists()
    client, status = sign_in("alice", PASSWORD)
    assert status == 302 and signed_in(client)


def test_a_lockout_ends_when_its_newest_failures_no_longer_reach_the_limit() -> None:
    now = timezone.now()
    cool_off = settings.AXES_COOLOFF_TIME
    for address, failures, ago in (("192.0.2.80", 3, 10), ("192.0.2.81", 2, 1), ("192.0.2.82", 9, 20)):
        attempt = AccessAttempt.objects.create(
            username="carol", ip_address=address, user_agent="t", failures_since_start=failures
        )
        # axes stamps a record with its last failure; the one 20 minutes ago is past the cool-off already.
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=now - timedelta(minutes=ago))
    expected = now - timedelta(minutes=10) + cool_off  # then only the 2 failures of a minute ago are left
    assert lockout_selectors.locked_until(username="carol", address=None, now=now) == expected
    assert lockout_selectors.locked_until(username="carol", address=None, now=expected) is None
    assert lockout_selectors.locked_until(username=None, address="192.0.2.81", now=now) is None
    [user, *addresses] = lockout_selectors.sign_in_failures(now=now)
    assert (user.kind, user.value, user.failures, user.locked_until) == ("user", "carol", 5, expected)
    assert user.seen_with == ["192.0.2.81", "192.0.2.80"]
    assert [(a.value, a.failures, a.locked) for a in addresses] == [
        ("192.0.2.81", 2, False),
        ("192.0.2.80", 3, False),
    ]
