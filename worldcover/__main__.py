"""``python -m worldcover`` is the ``worldcover`` command."""

from worldcover.cli import main

if __name__ == "__main__":
    main()
