"""The one error type of the simulator package."""


class SimulationError(RuntimeError):
    """A simulation could not be set up or run; the message says what to change."""
