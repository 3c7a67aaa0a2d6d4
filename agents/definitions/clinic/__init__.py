"""Clinic: a small appointment line with a triage nurse (shows that scenarios are independent)."""
