"""Signed OTA on the host (docs/ota.md): keys, signing, test images, verifying
with the firmware verifier, update requests (tool.py, `ihd ota`) and the HTTP
range server devices download from (server.py)."""
