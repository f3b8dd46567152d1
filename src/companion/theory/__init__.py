"""Closed forms, one submodule per paper: ``nc``, ``unhinged``, ``rooted``, ``dynamical``."""
