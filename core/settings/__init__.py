"""Configuration sections, one module per stage, composed into `core.config.FacmonConfig`.

Each stage owns its section's module, so a change to one stage's settings touches one file.
"""
