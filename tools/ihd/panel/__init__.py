"""The e-ink panel emulator (`ihd panel`, docs/display.md): replays the SPI/pin
stream the firmware sent into controller models (models.py: SSD1680, UC8151)
and renders what the glass shows (emulator.py)."""
