"""teachers stage of mlff-distiller."""
