"""The whole in-home display simulated (`ihd sim run`, docs/sim.md): run.py drives
the run, cli.py its options, proc.py the processes (firmware on MicroPython, the
emulator, the collector), ops.py the operator actions, inject.py fault
injection, results.py the verdict, netimpair.py the lossy NAT path."""
