"""Writers for agents and knowledge bases: pure deciders and the Faust app that runs them."""
