"""Host adapters: translate a billing host's data into service calls, and back."""
