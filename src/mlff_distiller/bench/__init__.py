"""bench stage of mlff-distiller."""
