"""The selective-learning study (after Nicolay, "Active Learning in Neural Networks"): passive learning, SASLA (output-sensitivity pattern pruning),
entropy and ensemble uncertainty sampling with a one-hidden-layer sigmoid network, with the statistics.

Entry points: :func:`mpts_fast.study.runner.run_study` and the `mpts-fast study` command; definitions of
the metrics are in docs/study.md. Optional dependency: scikit-posthocs (Nemenyi, CD diagram), imported
only when the statistics are computed.
"""
