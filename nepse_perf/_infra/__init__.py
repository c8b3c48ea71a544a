"""Plumbing every layer shares, written once: argument checks, free loopback ports, atomic
file writes (one durability: fsync of the file and of its directory), and the lifecycle of a
child process (start, wait until ready, SIGTERM then SIGKILL)."""
