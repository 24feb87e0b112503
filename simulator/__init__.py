"""Built-in simulator of a cost-aware scheduler, with scenarios and ground truth.

Pure: it yields encoded events and reports its ground truth; writing files is the CLI's job.

>>> sim = Simulation(SCENARIOS["baseline"], events=5, seed=1)
>>> lines = list(sim)
>>> len(lines), sim.truth["events"], lines[0][:40]
(5, 5, b'{"event_type":"placement","schema_versio')
"""

from simulator.engine import LIVE_CHANGE_AT, START, Simulation
from simulator.scenarios import SCENARIOS, Scenario

__all__ = ["LIVE_CHANGE_AT", "SCENARIOS", "START", "Scenario", "Simulation"]
