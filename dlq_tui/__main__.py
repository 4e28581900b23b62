"""`python -m dlq_tui` is the same as the `dlq-tui` command."""

from dlq_tui.cli import main

if __name__ == "__main__":
    main()
