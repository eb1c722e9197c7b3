"""Sending one alert delivery: an e-mail through Django's mail settings, or a JSON POST to a webhook (signed
with HMAC-SHA256 when the webhook has a secret). Each attempt is recorded on the delivery."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import smtplib
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Q
from django.utils import timezone

from directory_sync.models import AlertDelivery, AlertSettings, DomainAlertSettings
from directory_sync.secrets import SecretUnreadable
from directory_sync.selectors_alerts import alert_settings

SIGNATURE_HEADER = "X-Console-Signature-256"
# A delivery left "sending" this long lost its worker: a redelivered task may send it again.
SENDING_ABANDONED_AFTER = timedelta(minutes=5)


class DeliveryFailed(Exception):
    """A delivery did not get through (the message says why); the task retries it."""


def signature(*, secret: str, body: bytes) -> str:
    """The value of the signature header: "sha256=" and the hex HMAC-SHA256 of the body under the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(*, delivery_id: int) -> AlertDelivery | None:
    """Send a queued delivery once (a task delivered twice sends once); DeliveryFailed when it failed."""
    now = timezone.now()
    sendable = Q(status__in=[AlertDelivery.Status.PENDING, AlertDelivery.Status.FAILED]) | Q(
        status=AlertDelivery.Status.SENDING, last_attempt_at__lt=now - SENDING_ABANDONED_AFTER
    )
    claimed = (
        AlertDelivery.objects.filter(sendable, pk=delivery_id)
        .update(status=AlertDelivery.Status.SENDING, last_attempt_at=now)
    )  # fmt: skip
    if not claimed:
        return None
    delivery = AlertDelivery.objects.select_related("alert__domain").get(pk=delivery_id)
    attempt_delivery(delivery=delivery)
    if delivery.status == AlertDelivery.Status.FAILED:
        raise DeliveryFailed(f"Delivery #{delivery.pk}: {delivery.error}")
    return delivery


def attempt_delivery(*, delivery: AlertDelivery) -> AlertDelivery:
    """Send it now and record how it went; a channel's trouble is recorded, never raised."""
    try:
        if delivery.channel == AlertDelivery.Channel.EMAIL:
            _send_email(delivery)
        else:
            _post_webhook(delivery)
    except DeliveryFailed as failure:
        delivery.status, delivery.error = AlertDelivery.Status.FAILED, str(failure)
    else:
        delivery.status, delivery.error = AlertDelivery.Status.DELIVERED, ""
        delivery.delivered_at = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = timezone.now()
    delivery.save(update_fields=["status", "error", "attempts", "last_attempt_at", "delivered_at"])
    return delivery


def _send_email(delivery: AlertDelivery) -> None:
    alert = delivery.alert
    recipients = [address.strip() for address in delivery.target.split(",") if address.strip()]
    message = EmailMessage(
        subject=alert.subject,
        body=f"{alert.message}\n\n-- \nThe directory-sync console (alert #{alert.pk})",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as error:
        where = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
        raise DeliveryFailed(
            f"The mail server {where} did not take it: {error or type(error).__name__}"
        ) from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body: a redirect is an answer like any non-2xx."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _post_webhook(delivery: AlertDelivery) -> None:
    body = webhook_body(delivery.alert.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "directory-sync-console",
        "X-Console-Delivery": str(delivery.pk),
    }
    secret = _webhook_secret(delivery)
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret=secret, body=body)
    request = urllib.request.Request(delivery.target, data=body, headers=headers, method="POST")  # noqa: S310
    timeout = settings.ALERT_WEBHOOK_TIMEOUT_SECONDS
    try:
        # The URL's scheme is http or https: the forms accept nothing else.
        with _opener.open(request, timeout=timeout) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as error:
        raise DeliveryFailed(f"The webhook answered HTTP {error.code} {error.reason}.") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            raise DeliveryFailed(f"The webhook did not answer within {timeout:g} s.") from None
        raise DeliveryFailed(f"The webhook could not be reached: {reason}.") from None
    except TimeoutError:
        raise DeliveryFailed(f"The webhook did not answer within {timeout:g} s.") from None
    except (http.client.HTTPException, OSError) as error:
        raise DeliveryFailed(f"The webhook's answer broke off: {error or type(error).__name__}.") from None


def _webhook_secret(delivery: AlertDelivery) -> str:
    """The secret of the configuration the webhook came from (read now: a changed secret applies at once)."""
    owner: AlertSettings | DomainAlertSettings | None
    domain_id = delivery.alert.domain_id
    if delivery.source == AlertDelivery.Source.DOMAIN and domain_id is not None:
        owner = DomainAlertSettings.objects.filter(domain_id=domain_id).first()
    else:
        owner = alert_settings()
    if owner is None:
        return ""
    try:
        return owner.get_webhook_secret()
    except SecretUnreadable as error:
        raise DeliveryFailed(f"The webhook's secret: {error}") from None
