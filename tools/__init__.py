"""Developer tools run by the Makefile (code generation, lock files); not part of the wheel."""
