"""The firmware onto a real board (`ihd deploy`, `ihd flash`, docs/boards.md):
compiled modules copied with mpremote, or a whole image written with esptool."""
