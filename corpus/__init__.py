"""Textbook-style Python corpus builder."""
