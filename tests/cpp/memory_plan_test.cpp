// runtime::plan_memory: intermediates share one workspace; memory of a
// tensor nobody reads any more is reused, live tensors never overlap, and
// every buffer starts on a 64-byte boundary.
#include <gtest/gtest.h>

#include <random>

#include "sol/runtime/memory_plan.h"

namespace {

using sol::runtime::BufferLifetime;
using sol::runtime::MemoryPlan;
using sol::runtime::plan_memory;

std::size_t aligned(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

// Both alive at some step (a step's inputs and its output count as alive
// together: a kernel must not write over what it reads).
bool lifetimes_overlap(const BufferLifetime& a, const BufferLifetime& b) {
    return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

void expect_sound(const std::vector<BufferLifetime>& buffers, const MemoryPlan& plan, std::size_t tensor_count) {
    ASSERT_EQ(plan.offsets.size(), tensor_count);
    EXPECT_EQ(plan.workspace_bytes % 64, 0u);
    for (const BufferLifetime& b : buffers) {
        const std::int64_t offset = plan.offsets[b.tensor];
        ASSERT_GE(offset, 0) << "tensor " << b.tensor << " has no place";
        EXPECT_EQ(offset % 64, 0) << "tensor " << b.tensor << " at " << offset;
        EXPECT_LE(static_cast<std::size_t>(offset) + b.bytes, plan.workspace_bytes) << "tensor " << b.tensor;
    }
    for (std::size_t i = 0; i < buffers.size(); ++i)
        for (std::size_t j = i + 1; j < buffers.size(); ++j) {
            const BufferLifetime &a = buffers[i], &b = buffers[j];
            if (!lifetimes_overlap(a, b) || a.bytes == 0 || b.bytes == 0) continue;
            const std::size_t a0 = plan.offsets[a.tensor], b0 = plan.offsets[b.tensor];
            const bool disjoint = a0 + a.bytes <= b0 || b0 + b.bytes <= a0;
            EXPECT_TRUE(disjoint) << "tensors " << a.tensor << " [" << a0 << ", " << a0 + a.bytes << ") steps "
                                  << a.first_step << ".." << a.last_step << " and " << b.tensor << " [" << b0
                                  << ", " << b0 + b.bytes << ") steps " << b.first_step << ".." << b.last_step;
        }
}

TEST(MemoryPlan, ChainReusesFreedMemory) {
    // a -> b -> c -> d: step k writes tensor k and reads tensor k-1.
    std::vector<BufferLifetime> chain;
    for (int k = 0; k < 4; ++k) chain.push_back({k, 1000, k, k == 3 ? 3 : k + 1});
    const MemoryPlan plan = plan_memory(chain, 4);
    expect_sound(chain, plan, 4);
    EXPECT_EQ(plan.workspace_bytes, 2 * aligned(1000)) << "two buffers' worth, not four";
    EXPECT_EQ(plan.offsets[0], plan.offsets[2]);
    EXPECT_EQ(plan.offsets[1], plan.offsets[3]);
    EXPECT_NE(plan.offsets[0], plan.offsets[1]);
}

TEST(MemoryPlan, OutputIsNeverPlacedOnItsOwnInput) {
    // b is written by the step that reads a for the last time.
    const std::vector<BufferLifetime> buffers = {{0, 256, 0, 1}, {1, 256, 1, 2}};
    const MemoryPlan plan = plan_memory(buffers, 2);
    expect_sound(buffers, plan, 2);
    EXPECT_NE(plan.offsets[0], plan.offsets[1]);
}

TEST(MemoryPlan, SixtyFourByteAlignment) {
    std::vector<BufferLifetime> buffers;
    const std::size_t sizes[] = {1, 63, 64, 65, 100, 129, 4, 3000};
    for (int k = 0; k < 8; ++k) buffers.push_back({k + 2, sizes[k], 0, 5});  // all alive together
    const MemoryPlan plan = plan_memory(buffers, 10);
    expect_sound(buffers, plan, 10);
    std::size_t total = 0;
    for (std::size_t s : sizes) total += aligned(s);
    EXPECT_EQ(plan.workspace_bytes, total) << "all live at once: nothing to share, no waste";
    EXPECT_EQ(plan.offsets[0], -1) << "tensors outside the workspace have offset -1";
    EXPECT_EQ(plan.offsets[1], -1);
}

TEST(MemoryPlan, FreedNeighboursMergeForALargerBuffer) {
    // a and b (64 bytes each, side by side) die at step 1; c stays; d needs 128.
    const std::vector<BufferLifetime> buffers = {
        {0, 64, 0, 1}, {1, 64, 0, 1}, {2, 64, 0, 5}, {3, 128, 2, 3}};
    const MemoryPlan plan = plan_memory(buffers, 4);
    expect_sound(buffers, plan, 4);
    EXPECT_EQ(plan.workspace_bytes, 192u) << "d fits in the merged space of a and b";
    EXPECT_EQ(plan.offsets[3], std::min(plan.offsets[0], plan.offsets[1]));
}

TEST(MemoryPlan, SmallBufferReusesPartOfALargeFreedOne) {
    const std::vector<BufferLifetime> buffers = {
        {0, 4096, 0, 1}, {1, 64, 1, 4}, {2, 1024, 2, 4}, {3, 1024, 3, 4}};
    const MemoryPlan plan = plan_memory(buffers, 4);
    expect_sound(buffers, plan, 4);
    EXPECT_EQ(plan.workspace_bytes, 4096u + 64u) << "c and d live in a's old space";
}

TEST(MemoryPlan, FreeSpaceAtTheEndGrowsInsteadOfStayingAHole) {
    // a (1024) dies at step 0; b (64) takes the start of its space; c needs
    // 1024 while b lives: it starts where the free space after b starts.
    const std::vector<BufferLifetime> buffers = {{0, 1024, 0, 0}, {1, 64, 1, 2}, {2, 1024, 2, 2}};
    const MemoryPlan plan = plan_memory(buffers, 3);
    expect_sound(buffers, plan, 3);
    EXPECT_EQ(plan.offsets[2], 64);
    EXPECT_EQ(plan.workspace_bytes, 64u + 1024u);
}

TEST(MemoryPlan, EmptyPlan) {
    const MemoryPlan plan = plan_memory({}, 3);
    EXPECT_EQ(plan.workspace_bytes, 0u);
    EXPECT_EQ(plan.offsets, (std::vector<std::int64_t>{-1, -1, -1}));
}

TEST(MemoryPlan, RandomLifetimesNeverOverlapWhileLive) {
    std::mt19937 engine(1234);
    for (int round = 0; round < 50; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        const int count = 5 + static_cast<int>(engine() % 60);
        const int steps = 1 + static_cast<int>(engine() % 40);
        std::vector<BufferLifetime> buffers;
        std::size_t peak = 0;
        for (int k = 0; k < count; ++k) {
            const int first = static_cast<int>(engine() % steps);
            const int last = first + static_cast<int>(engine() % (steps - first + 1));
            const std::size_t bytes = 1 + engine() % 5000;
            buffers.push_back({k, bytes, first, last});
        }
        for (int step = 0; step <= steps; ++step) {
            std::size_t live = 0;
            for (const BufferLifetime& b : buffers)
                if (b.first_step <= step && step <= b.last_step) live += aligned(b.bytes);
            peak = std::max(peak, live);
        }
        const MemoryPlan plan = plan_memory(buffers, count);
        expect_sound(buffers, plan, count);
        EXPECT_GE(plan.workspace_bytes, peak);
        std::size_t sum = 0;
        for (const BufferLifetime& b : buffers) sum += aligned(b.bytes);
        EXPECT_LE(plan.workspace_bytes, sum);
        if (testing::Test::HasFailure()) break;
    }
}

// In-place kernels (oneDNN's sum post-op adds a residual already in its
// output): the output takes over the residual's buffer when this step is the
// residual's last reader, and only then.
TEST(MemoryPlan, InPlaceOutputTakesOverItsLastReadInput) {
    // 0 is read last by step 1, which writes 1 over it; 2 keeps 1 alive.
    std::vector<BufferLifetime> buffers{{0, 1000, 0, 1}, {1, 1000, 1, 2, 0}, {2, 1000, 2, 2}};
    MemoryPlan plan = plan_memory(buffers, 3);
    EXPECT_EQ(plan.offsets[1], plan.offsets[0]);
    EXPECT_EQ(plan.workspace_bytes, aligned(1000) * 2);

    // 0 is still read at step 2: step 1 must not write over it.
    buffers = {{0, 1000, 0, 2}, {1, 1000, 1, 2, 0}};
    plan = plan_memory(buffers, 2);
    EXPECT_NE(plan.offsets[1], plan.offsets[0]);
    expect_sound(buffers, plan, 2);

    // Different sizes: no takeover.
    buffers = {{0, 500, 0, 1}, {1, 1000, 1, 1, 0}};
    plan = plan_memory(buffers, 2);
    EXPECT_NE(plan.offsets[1], plan.offsets[0]);
}

}  // namespace
