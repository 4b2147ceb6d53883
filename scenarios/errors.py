"""The one error type of the scenario package."""


class ScenarioError(ValueError):
    """A scenario file or a scenario choice is invalid; the message says where and how to fix it."""
