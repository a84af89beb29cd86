"""The meter side, for the simulator and the tests: the co-processor emulator
(coproc.py, `ihd emulator serve`) playing a RAVEn/EMU-2 stick (raven_session.py,
raven_xml.py) or an EmberZNet NCP (ezsp_session.py, ezsp_ncp.py, ncp_ash.py,
ncp_extras.py) attached to a meter (meter_history.py, tariff.py, supplier.py)
whose household follows loadprofile.py."""
