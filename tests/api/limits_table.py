"""The input limits of docs/design.md#limits (runtime/core/limits.h) for the Python tests: one
copy that tests/hostile/limits and tests/property import instead of each writing its own.
Imports nothing and reads no arguments, so any test can import it."""

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
MAX_ID, MAX_TEXT, MAX_EVIDENCE, MAX_LINES, MAX_CASE_ITEMS = 64, 256, 32, 100, 100
MAX_QTY = 10_000
MAX_MONEY = 10_000_000_000
MAX_TIME = 253_402_300_799_999  # ms: the end of year 9999 UTC
