"""models stage of mlff-distiller."""
