"""Deployment helpers for sd-turbo-serve (Ray Serve configs, deploy and smoke-test scripts)."""
