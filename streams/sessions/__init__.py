"""Session workers: one Gemini Live session per live call, bridged to the call's edge node."""
