"""Event Grid's side of the local stack: validate a webhook subscription, then deliver events to it.

Deliveries are shaped as Event Grid sends them to a Functions Event Grid trigger endpoint: a JSON
array (Event Grid schema) or one structured CloudEvent, with `aeg-event-type: Notification` and the
subscription's name. Any status other than 200-204 is a failed delivery (Event Grid would retry).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from local_stack.acs.incoming import RESOURCE_ID

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
SUBSCRIPTION = "acs-incoming-call"


class DeliveryFailed(RuntimeError):
    pass


class EventGridSubscription:
    """One webhook subscription: `await sub.validate()` once, then `await sub.deliver(event)`."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, name: str = SUBSCRIPTION) -> None:
        self.session = session
        self.url = url
        self.name = name
        self.validated = False

    def _headers(self, event_type: str, content_type: str = "application/json") -> dict[str, str]:
        return {"Content-Type": content_type, "aeg-event-type": event_type, "aeg-subscription-name": self.name.upper(),
                "aeg-delivery-count": "0", "aeg-data-version": "1", "aeg-metadata-version": "1"}

    async def validate(self) -> None:
        """The handshake on subscription create: the endpoint must echo the validation code with a 200."""
        code = str(uuid.uuid4())
        event = {"id": str(uuid.uuid4()), "topic": RESOURCE_ID, "subject": "", "eventType": VALIDATION_EVENT,
                 "eventTime": datetime.now(UTC).isoformat(), "metadataVersion": "1", "dataVersion": "1",
                 "data": {"validationCode": code, "validationUrl": f"https://eventgrid.local/validate?id={code}"}}
        async with self.session.post(self.url, json=[event], headers=self._headers("SubscriptionValidation")) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else None
        if not isinstance(body, dict) or body.get("validationResponse") != code:
            raise DeliveryFailed(f"subscription validation failed at {self.url}: HTTP {resp.status}, {body!r}")
        self.validated = True

    async def deliver(self, event: Mapping[str, Any]) -> int:
        """Deliver one event; returns the endpoint's status, raising DeliveryFailed unless it is 200-204."""
        if "specversion" in event:
            payload: Any = dict(event)
            headers = self._headers("Notification", "application/cloudevents+json; charset=utf-8")
        else:
            payload = [dict(event)]
            headers = self._headers("Notification")
        async with self.session.post(self.url, json=payload, headers=headers) as resp:
            status = resp.status
            detail = await resp.text()
        if not 200 <= status <= 204:
            raise DeliveryFailed(f"delivery to {self.url} failed: HTTP {status} {detail[:200]}")
        return status
