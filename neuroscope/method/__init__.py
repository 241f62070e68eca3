"""The method's steps, each usable on its own: the data, the candidate directions, their scores and the
selection, the evaluations, the weight-edit frontier, generalisation, the head analysis, and the artifacts
they write.

This package sits below both the experiment runner (``neuroscope.experiment``, which orders the steps and
handles resume) and the app's services (``neuroscope.services``); it imports neither, nor the UI
(``tests/test_layers.py`` holds that).
"""
