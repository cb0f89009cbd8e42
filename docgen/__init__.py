"""The documentation pages written from the code, so that they cannot drift from it.

``python -m docgen`` writes them into ``docs/reference/`` (``make docs`` runs it before building
the site); ``python -m docgen --check`` says which committed page differs from what the code says
(a unit test runs the same check).
"""
