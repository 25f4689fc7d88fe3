"""Edge node: holds Twilio media sockets and bridges call audio to session workers."""
