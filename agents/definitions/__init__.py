"""The scenarios Switchboard ships: one directory per scenario (scenario.yaml, agents/, prompts/, tools)."""
