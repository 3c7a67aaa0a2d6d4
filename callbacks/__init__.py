"""The ACS ingress on Azure Functions: incoming calls, Call Automation callbacks and call APIs."""
