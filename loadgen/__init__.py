"""The Locust load generator that drives the server open-loop.

Not built yet: see the load generator issue. Nothing here is imported by the simulator.
"""
