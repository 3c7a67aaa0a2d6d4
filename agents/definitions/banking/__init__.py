"""Banking: a bank's phone line with caller verification and specialist agents (the main demo)."""
