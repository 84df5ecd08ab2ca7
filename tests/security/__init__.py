"""Hostile-input suite: each test plays an attacker against the hub and expects a refusal."""
