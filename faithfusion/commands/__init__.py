"""The entry points: one module per `faithfusion` command, on top of the library (nothing below imports them)."""
