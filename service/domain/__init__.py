"""The payment domain: the split and leg model, its rules for names and hashes, its errors.

Imports nothing from the rest of the service, so every layer above may use it.
"""
