from streamspace.startup import pause_collector

__version__ = "0.2.0"

# A function imports this package before any other of its modules: under functions-framework's
# command its own imports run without the cyclic collector too (streamspace.startup).
pause_collector()
