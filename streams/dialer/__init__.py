"""The call manager: outbound dialling within limits, windows and retries (issue 6)."""
