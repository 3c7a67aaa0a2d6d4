"""What both runtimes share: settings, logging, the Redis session store and per-call tokens."""

__version__ = "0.1.0"
