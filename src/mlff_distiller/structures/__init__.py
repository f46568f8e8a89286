"""structures stage of mlff-distiller."""
