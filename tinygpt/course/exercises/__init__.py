"""One package per exercise (``NAME/__init__.py``: the checks; ``NAME/starter.py``: the student's start)."""
