"""The offline Gemini stand-in: a local Live API (and generateContent) server for tests and demos."""
