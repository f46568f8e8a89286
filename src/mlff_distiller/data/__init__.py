"""data stage of mlff-distiller."""
