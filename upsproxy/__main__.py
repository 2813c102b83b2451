"""``python -m upsproxy`` is the ``upsproxy`` command."""

from upsproxy.cli import main

main()
