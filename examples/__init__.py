"""Example apps: one small app per framework, each exposing a wrapped callable ``app``."""
