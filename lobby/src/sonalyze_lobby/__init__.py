"""Sonalyze lobby: Lobbies, participants, roles and the measurement workflow."""
