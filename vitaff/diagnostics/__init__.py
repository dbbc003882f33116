"""Diagnostics that are not paper steps: measurements that explain the paper steps' numbers.

* :mod:`vitaff.diagnostics.walk_ceiling` -- the random walk with ground-truth instance affinity on
  the same seeds: the most any affinity network could add under the walk's constants;
* :mod:`vitaff.diagnostics.seed_mass` -- seed mass and CRF labels on the generated objects'
  parts, bodies and background (embedded dataset only);
* :mod:`vitaff.diagnostics.affinity_stats` -- AffinityNet's mean affinity per kind of neighbour
  pair (embedded dataset only).

Their rules live in ``workflow/rules/diagnostics.smk``; CLIs in :mod:`vitaff.diagnostics.stages`.
"""
