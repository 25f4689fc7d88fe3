"""The event contract: records, their Avro schemas, the one codec and the topic catalog."""
