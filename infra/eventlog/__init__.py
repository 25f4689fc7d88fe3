"""The integrator's view of the event log: tail, export, archive, restore and the AsyncAPI document."""
