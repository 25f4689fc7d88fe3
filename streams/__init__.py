"""Faust app: call state machines, Gemini sessions, the dialer, agent and knowledge writers."""
