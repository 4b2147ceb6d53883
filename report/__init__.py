"""HTML reports comparing simulation, measurement and the seed's figures.

Not built yet: see the reporter issue. Nothing here is imported by the simulator.
"""
