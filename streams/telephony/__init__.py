"""Telephony adapters: how the dialer places and hangs up calls (Twilio REST, or a fake)."""
