"""The top layer: commands that compose the parts (sweep, dashboards, tiny-model); nothing below imports them."""
