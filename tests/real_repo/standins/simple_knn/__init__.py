"""CPU TEST STAND-IN for the CUDA ``simple_knn`` extension (used only by the test harness)."""
