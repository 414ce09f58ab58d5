"""EdgeLoop: close the machine-learning loop at the edge.

This is the package shared by every edge module (runtime, message contracts, envelope
format), the dev hub and the command line. Each module's own logic lives in its container
folder under ``modules/<name>/``.
"""

__version__ = "0.1.0"
