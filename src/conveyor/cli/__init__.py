"""The ``conveyor`` command line: thin commands over the library."""
