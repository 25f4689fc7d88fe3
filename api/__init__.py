"""The operator REST API: reads read models, writes commands to Kafka."""
