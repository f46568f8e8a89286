"""training stage of mlff-distiller."""
