"""``edgeloop deploy prepare``: what a new device needs from the cloud side, made in one step.

Keys (``keys.py`` of the package root), storage containers and SAS (``storage``), the initial
signed model (``model``), and the layered deployment that carries it all to the device
(``layer``), put together by ``prepare`` and exposed as a command by ``cli``.
"""
