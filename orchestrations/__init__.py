"""Durable orchestrations: one call_session per call, with activities for all I/O."""
