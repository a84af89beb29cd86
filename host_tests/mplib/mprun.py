# MicroPython side of the test harness: import a test module by path and
# run one test function. Any exception propagates, so MicroPython prints its
# own traceback and exits non-zero; host_tests/conftest.py turns that into a
# pytest failure.
import sys

path, name = sys.argv[1], sys.argv[2]
slash = path.rfind("/")
sys.path.insert(0, path[:slash])
mod = __import__(path[slash + 1 : -3])
getattr(mod, name)()
print("mprun: ok", name)
