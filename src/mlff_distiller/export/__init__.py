"""export stage of mlff-distiller."""
