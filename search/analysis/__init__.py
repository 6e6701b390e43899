"""What a study says: its summary (data), figures and report (display)."""
