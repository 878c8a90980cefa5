"""A composition run, from spec to registered output: inputs, dry run, lifecycle, output."""
