"""Pure, seeded stochastic models of EV charging demand and charging physics (no I/O)."""
