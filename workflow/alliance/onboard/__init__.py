"""`alliance init`: inspect a foreign export and write a starter config."""
