"""The `voiceagent` command: the composition root that runs and operates the whole platform."""
