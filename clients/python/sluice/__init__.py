"""Sluice client (placeholder; filled in below)."""
