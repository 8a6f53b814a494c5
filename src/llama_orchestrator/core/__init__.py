"""Pure domain logic: no I/O, no asyncio, no clocks, no randomness; time and chance are passed in."""
