"""Agent webhooks for call events: signed, delivered at least once, every attempt recorded."""
