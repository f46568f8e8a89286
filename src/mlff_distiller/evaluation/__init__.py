"""evaluation stage of mlff-distiller."""
