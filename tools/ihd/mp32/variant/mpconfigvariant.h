// mp32: the MicroPython Unix port configured like the ESP32 port where it
// changes what firmware does (ports/esp32/mpconfigport.h):
//   * built with -m32 (mpconfigvariant.mk): 32-bit words, so small ints are
//     31-bit and every value at or above 2^30 is a heap-allocated long int;
//   * MICROPY_FLOAT_IMPL_FLOAT: single-precision floats (24-bit mantissa);
//   * MPZ long ints, object representation A, as the ESP32;
//   * the firmware frozen into the binary (manifest.py), so its bytecode and
//     names live outside the heap, as in the device's flash.
// The `machine` module is left out: the ESP32 port's machine, esp32 and
// network modules are emulated in Python (tools/ihd/mp32/esp32port/) for the
// esp32s3_eink29 board, and hal/unix.py needs none of them.

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#define MICROPY_FLOAT_IMPL             (MICROPY_FLOAT_IMPL_FLOAT)
#define MICROPY_LONGINT_IMPL           (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_OBJ_REPR               (MICROPY_OBJ_REPR_A)
// The ESP32 port reports errors at the NORMAL level; keep DETAILED here so a
// failing test says which name or argument was wrong (no effect on values).
#define MICROPY_ERROR_REPORTING        (MICROPY_ERROR_REPORTING_DETAILED)

#include "variants/mpconfigvariant_common.h"  // ports/unix is on the include path

// After the common settings (which turn it on): no built-in machine module.
#undef MICROPY_PY_MACHINE
#define MICROPY_PY_MACHINE             (0)
#undef MICROPY_PY_MACHINE_PULSE
#define MICROPY_PY_MACHINE_PULSE       (0)
#undef MICROPY_PY_MACHINE_PIN_BASE
#define MICROPY_PY_MACHINE_PIN_BASE    (0)
