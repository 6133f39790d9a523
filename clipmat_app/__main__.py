"""``python -m clipmat_app``: the web app."""

from clipmat_app.cli import main

main()
