# Device entry point: MicroPython runs main.py after boot. Everything else
# lives in app/ so that it can be frozen or shipped as .mpy (a main.py is
# only ever run from source).
from app import app

app.main()
