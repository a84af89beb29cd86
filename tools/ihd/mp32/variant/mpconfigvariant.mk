# mp32: 32-bit, single-precision, frozen-firmware Unix build (see
# mpconfigvariant.h). Built by `make mp32` (tools/ihd/mp32/build.py).
# -m32: the Unix Makefile no longer honours MICROPY_FORCE_32BIT.
CFLAGS_EXTRA += -m32
LDFLAGS_EXTRA += -m32
MPY_CROSS_FLAGS += -march=x86
MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
MICROPY_PY_SSL = 1
MICROPY_SSL_AXTLS = 1
MICROPY_SSL_MBEDTLS = 0
MICROPY_USE_READLINE = 0
MICROPY_PY_THREAD = 1
FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py
