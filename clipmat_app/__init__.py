"""The CLIPMat web app and the figure script, beside the library.

    python app.py | python -m clipmat_app | clipmat-app      # the web app (Gradio)
    python -m clipmat_app.figure | clipmat-demo                 # figures for papers

The library (``clipmat``, ``editing``) imports nothing from here. Importing this package loads
no UI code; :mod:`clipmat_app.ui` and :mod:`clipmat_app.cli` import gradio.
"""
