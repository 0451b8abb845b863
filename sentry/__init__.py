"""The sentry: runs the workload and answers its trapped syscalls."""
