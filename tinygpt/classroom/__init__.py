"""Classroom tools built on the library, never imported by it.

- ``vision``: a digit classifier made of the same layers, loss, optimizer and
  ``Trainer`` as TinyGPT (``tinygpt vision``).
- ``plots``: loss curves and attention heat maps (``tinygpt plot``, ``tinygpt attention``).
- ``profiler``: where a training step spends its time (``tinygpt train --profile``).
"""
