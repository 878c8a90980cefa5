"""Thin routes over registry.service: parse, authorize (api.deps), call, return the service's views."""
