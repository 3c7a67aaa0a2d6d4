"""A local ACS Call Automation service for tests and the local stack (see `server.LocalAcs`)."""

from local_stack.acs.calls import Call
from local_stack.acs.eventgrid import DeliveryFailed, EventGridSubscription
from local_stack.acs.hmac_auth import HmacError, verify_hmac
from local_stack.acs.incoming import incoming_call_event, parse_incoming_call_context
from local_stack.acs.media import INTERRUPTED, UNSUCCESSFUL, MediaConnector, MediaLost, MediaOffer
from local_stack.acs.rest import AcsRequest
from local_stack.acs.server import Delivery, LocalAcs, new_access_key

__all__ = ["INTERRUPTED", "UNSUCCESSFUL", "AcsRequest", "Call", "Delivery", "DeliveryFailed", "EventGridSubscription",
           "HmacError", "LocalAcs", "MediaConnector", "MediaLost", "MediaOffer", "incoming_call_event",
           "new_access_key", "parse_incoming_call_context", "verify_hmac"]
