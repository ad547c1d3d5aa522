// Counts every heap allocation of the test binary that links alloc_counter.cpp, so a test
// can prove that code on the hot path allocates nothing. gtest itself allocates: compare
// the count just before and just after the code under test.
#pragma once

#include <cstdint>

namespace zernel::testing {

std::uint64_t allocations_so_far();

}  // namespace zernel::testing
