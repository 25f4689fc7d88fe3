"""The call aggregate: its state, limits and pure decider (decide, evolve, fold)."""
