"""Test support shared by every test layer."""
