"""Experiments: one module per chapter, named like its notebook.

Each holds its ``Config``, its profile table, ``config(profile)``, ``run(cfg, seeds)`` and
``verdicts(metrics)``.  The library (``minir1.*``) never imports from here.
"""
