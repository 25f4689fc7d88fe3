"""Writers for agents and knowledge bases: pure deciders and the consumer loop that runs them."""
