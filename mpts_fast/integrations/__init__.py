"""Our kernels inside other active-learning libraries, imported on demand (neither library is needed to import this
package):

- :mod:`mpts_fast.integrations.baal`: BALD, Entropy, Variance and Margin heuristics for baal, computed by
  ops.snapshot_uncertainty (pip install baal).
- :mod:`mpts_fast.integrations.skactiveml`: CoreSet and BADGE query strategies for scikit-activeml, computed by
  ops.kcenter_greedy / ops.badge_select (pip install scikit-activeml).
"""
