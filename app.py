"""CLIPMat web app launcher (also the Hugging Face Space entry point).

    python app.py [--host H] [--port P] [--predictor NAME|auto|CHECKPOINT] [--device D]

The app itself is the package ``clipmat_app`` (``clipmat app`` when installed).
"""

from clipmat_app.cli import main

if __name__ == "__main__":
    main()
