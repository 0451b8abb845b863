"""runsc-py: an OCI runtime that runs workloads under a Python sentry."""
