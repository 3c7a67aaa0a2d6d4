"""A local ACS Call Automation service for tests and the local stack (see `server.LocalAcs`).

Hand-written: no installable ACS emulator exists (Microsoft ships none for Call Automation or media streaming).
"""

from local_stack.acs.calls import AcsCallConnection, Delivery
from local_stack.acs.eventgrid import DeliveryFailed, EventGridSubscription
from local_stack.acs.hmac_auth import HmacError, new_access_key, verify_hmac
from local_stack.acs.incoming import incoming_call_event, parse_incoming_call_context
from local_stack.acs.media import INTERRUPTED, UNSUCCESSFUL, MediaConnector, MediaLost, MediaOffer
from local_stack.acs.models import SchemaError, StreamingOptions
from local_stack.acs.rest import AcsRequest
from local_stack.acs.server import LocalAcs

__all__ = [
           "INTERRUPTED",
           "UNSUCCESSFUL",
           "AcsCallConnection",
           "AcsRequest",
           "Delivery",
           "DeliveryFailed",
           "EventGridSubscription",
           "HmacError",
           "LocalAcs",
           "MediaConnector",
           "MediaLost",
           "MediaOffer",
           "SchemaError",
           "StreamingOptions",
           "incoming_call_event",
           "new_access_key",
           "parse_incoming_call_context",
           "verify_hmac",
]
