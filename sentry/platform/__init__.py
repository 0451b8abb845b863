"""Platforms: how the workload's syscalls reach the sentry (see DESIGN.md)."""
