"""The frame every step shares: config checks, artifacts, the command line, environment, devices, errors, precision."""
