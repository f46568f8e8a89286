"""report stage of mlff-distiller."""
