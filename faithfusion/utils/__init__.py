"""Small utilities shared by every layer: JSON files, atomic writes, device choice, progress bars.

Each module answers one question and imports nothing from faithfusion except `faithfusion.errors`.
"""
