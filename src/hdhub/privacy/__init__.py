"""Privacy: the encrypted identity store (pseudonyms, de-identification and opposition come later)."""
