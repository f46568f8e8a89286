"""md stage of mlff-distiller."""
