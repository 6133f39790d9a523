"""Evaluation: matting metrics and grounding accuracy of any predictor (``evaluate``), the
zero-shot predictor's rows (``zeroshot``) and the fit of the trust calibration (``calibrate``).
The metrics themselves are :mod:`clipmat.metrics`. Inference modules never import this package.
"""
