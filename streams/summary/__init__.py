"""Post-call summaries: a finished call's transcript summarised and labelled by the model."""
