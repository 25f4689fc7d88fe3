"""The offline Twilio stand-in: the Calls REST API, signed callbacks, and simulated phones to ring."""
