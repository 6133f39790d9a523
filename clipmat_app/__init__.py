"""The CLIPMat web app and the figure script, beside the library.

    python app.py | clipmat app        # the web app (Gradio)
    clipmat figure                     # figures for papers

The library (``clipmat``, ``editing``) imports nothing from here. Importing this package loads
no UI code; :mod:`clipmat_app.ui` and :mod:`clipmat_app.cli` import gradio.
"""
