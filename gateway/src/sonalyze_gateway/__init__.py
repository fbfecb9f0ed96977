"""Sonalyze gateway: The only public entry: the phones' WebSocket and a small HTTP surface."""
