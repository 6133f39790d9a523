"""``python -m clipmat.demo``: kept for the documented command; the figure script is part of the
app package (:mod:`clipmat_app.figure`, also ``clipmat-demo``), so the library imports no
editing or UI code."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    from clipmat_app.figure import main as figure_script

    figure_script(argv)


if __name__ == "__main__":
    main()
