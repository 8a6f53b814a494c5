"""autostart package."""
