"""Device configuration (`ihd provision make|check|push`, docs/config.md): written
by tool.py, validated by the firmware's own validator on MicroPython."""
