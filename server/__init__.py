"""The OpenID Connect server under test (Starlette on Redis and PostgreSQL).

Not built yet: see the server issue. Nothing here is imported by the simulator.
"""
