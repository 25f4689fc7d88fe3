"""Consumers that fold the event topics into PostgreSQL read models."""
