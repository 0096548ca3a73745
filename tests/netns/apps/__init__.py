"""Small servers and clients run inside pods of the namespaced tests (as `python3 -m`-less scripts).

Each is a plain script so a pod's container `command` can run it with the project's Python.
"""
