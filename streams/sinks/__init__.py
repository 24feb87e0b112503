"""Where a run's effects go."""
