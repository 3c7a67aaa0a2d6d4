"""Conformance: the services' own documented examples and SDK models, checked against our edges and stand-ins.

Each module names the service, the artifact it is grounded in (package and version, or document), and
what cannot be checked without the real service.
"""
