# Money on the display, on MicroPython: exact to the minor unit on the
# 32-bit single-precision build as on the 64-bit one.
from display import fmt

HEAP = "64k"


def test_cost_is_exact_to_the_penny():
    # Today's cost, rounded half up to the minor unit, exactly: wh * price
    # in floats is wrong by a penny at half-penny points (single precision,
    # as on the ESP32, far more often than double). (Wh, p/kWh, shown);
    # each is an exact half or just below one.
    cases = (
        (30961, 35.9, "\u00a311.11"),  # 1111.4999p: float32 made it 1111.5 -> 11.12
        (22500, 11.4, "\u00a32.57"),  # 256.5p exactly
        (15000, 16.3, "\u00a32.45"),  # 244.5p
        (12500, 19.8, "\u00a32.48"),  # 247.5p
        (3125, 18.4, "\u00a30.58"),  # 57.5p
        (7500, 33.8, "\u00a32.54"),  # 253.5p
        (25000, 37.3, "\u00a39.33"),  # 932.5p
        (5000, 24.5, "\u00a31.23"),  # 122.5p
        (0, 24.5, "\u00a30.00"),
        (1234, 30, "\u00a30.37"),  # integer price: 37.02p
        (2_000_000, 28.63, "\u00a3572.60"),  # a large total, two decimals
    )
    for wh, price, want in cases:
        got = fmt.cost(wh, price, "\u00a3")
        assert got == want, (wh, price, got, want)
