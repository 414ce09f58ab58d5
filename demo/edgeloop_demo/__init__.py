"""The built-in demo: a drifting stream of handwritten digits rendered as camera frames.

A user of the product, kept apart from it: it drives the dev hub, the modules and the cloud
library, and gives the cloud its base data through ``training.base_data``. Nothing in
``src/edgeloop``, ``modules/`` or ``cloud/`` imports it (the ``edgeloop demo`` and
``edgeloop dev up`` commands load it when they run).
"""
