"""Transport adapters: each translates one wire protocol to the internal call model and back."""
