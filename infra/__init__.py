"""Infrastructure adapters: settings, Kafka and database clients, the embedded dev stack."""
