// The kernel prologue is pasted in front of every generated CPU module; here
// it is compiled on its own (a typo fails the build) and its scalar helpers
// are checked against PyTorch's definitions, NaN behaviour included.
#include "kernel_prologue.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(KernelPrologue, ReluKeepsNaNAndClampsNegatives) {
    EXPECT_TRUE(std::isnan(sol_relu(kNaN)));
    EXPECT_EQ(sol_relu(-2.5f), 0.0f);
    EXPECT_EQ(sol_relu(3.25f), 3.25f);
    EXPECT_EQ(sol_relu(-kInf), 0.0f);
    EXPECT_EQ(sol_relu(kInf), kInf);
    EXPECT_EQ(sol_relu<std::int64_t>(-7), 0);
    EXPECT_EQ(sol_relu<std::int64_t>(7), 7);
}

TEST(KernelPrologue, ClampKeepsNaNLikeTorchClamp) {
    EXPECT_TRUE(std::isnan(sol_clamp(kNaN, 0.0f, 6.0f)));
    EXPECT_EQ(sol_clamp(-1.0f, 0.0f, 6.0f), 0.0f);
    EXPECT_EQ(sol_clamp(7.0f, 0.0f, 6.0f), 6.0f);
    EXPECT_EQ(sol_clamp(2.0f, 0.0f, 6.0f), 2.0f);
    EXPECT_EQ(sol_clamp(5.0f, -kInf, kInf), 5.0f);
}

// torch.clamp docs: "If min is greater than max torch.clamp(..., min, max)
// sets all elements in input to the value of max" (min(max(x, lo), hi)).
TEST(KernelPrologue, ClampWithMinAboveMaxGivesMaxLikeTorch) {
    for (float x : {-10.0f, 0.0f, 3.0f, 4.0f, 10.0f}) EXPECT_EQ(sol_clamp(x, 5.0f, 2.0f), 2.0f) << "x = " << x;
    EXPECT_EQ(sol_clamp<std::int64_t>(0, 5, 2), 2);
}

TEST(KernelPrologue, HardswishMatchesPyTorchValues) {
    // torch.nn.functional.hardswish: x * relu6(x + 3) / 6
    struct Case { float x, expected; };
    const std::vector<Case> cases = {
        {-5.0f, 0.0f}, {-3.0f, 0.0f}, {-1.5f, -0.375f}, {0.0f, 0.0f},
        {1.0f, 4.0f / 6.0f}, {2.0f, 10.0f / 6.0f}, {3.0f, 3.0f}, {10.0f, 10.0f},
    };
    for (const Case& c : cases) EXPECT_NEAR(sol_hardswish(c.x), c.expected, 1e-6f) << "x = " << c.x;
    EXPECT_TRUE(std::isnan(sol_hardswish(kNaN)));
}

TEST(KernelPrologue, HardsigmoidMatchesPyTorchValues) {
    EXPECT_EQ(sol_hardsigmoid(-4.0f), 0.0f);
    EXPECT_EQ(sol_hardsigmoid(4.0f), 1.0f);
    EXPECT_NEAR(sol_hardsigmoid(0.0f), 0.5f, 1e-7f);
    EXPECT_NEAR(sol_hardsigmoid(1.5f), 0.75f, 1e-7f);
}

TEST(KernelPrologue, SmoothActivationsMatchReferenceValues) {
    EXPECT_NEAR(sol_sigmoid(0.0f), 0.5f, 1e-7f);
    EXPECT_NEAR(sol_sigmoid(2.0f), 0.880797078f, 1e-6f);
    EXPECT_EQ(sol_sigmoid(-100.0f), 0.0f);
    EXPECT_NEAR(sol_silu(1.0f), 0.731058579f, 1e-6f);
    EXPECT_NEAR(sol_gelu(1.0f), 0.841344746f, 1e-6f);       // x * Phi(x)
    EXPECT_NEAR(sol_gelu(-1.0f), -0.158655254f, 1e-6f);
    EXPECT_NEAR(sol_gelu_tanh(1.0f), 0.841191990f, 1e-6f);  // approximate="tanh"
    EXPECT_NEAR(sol_rsqrt(4.0f), 0.5f, 1e-7f);
}

TEST(KernelPrologue, TakesMaxPrefersNaNLikeTorchMaxPool) {
    EXPECT_TRUE(sol_takes_max(2.0f, 1.0f));
    EXPECT_FALSE(sol_takes_max(1.0f, 2.0f));
    EXPECT_FALSE(sol_takes_max(1.0f, 1.0f));
    EXPECT_TRUE(sol_takes_max(kNaN, 1.0f));   // a NaN candidate wins
    EXPECT_TRUE(sol_takes_max(kNaN, -kInf));
    EXPECT_FALSE(sol_takes_max(5.0f, kNaN));  // once NaN, a number never replaces it
    EXPECT_TRUE(sol_takes_max(-1.0f, -kInf));

    // The max-pool loop as generated: a NaN anywhere in the window wins.
    float best = -kInf;
    for (float candidate : {1.0f, kNaN, 9.0f, 3.0f})
        if (sol_takes_max(candidate, best)) best = candidate;
    EXPECT_TRUE(std::isnan(best));
    best = -kInf;
    for (float candidate : {1.0f, 9.0f, 3.0f})
        if (sol_takes_max(candidate, best)) best = candidate;
    EXPECT_EQ(best, 9.0f);
}

// The register helpers of channel-blocked kernels agree lane by lane with
// the scalar ones, NaN and infinities included, in both register widths.
template <typename V, int Lanes> void expect_vector_helpers_match_scalar() {
    const float values[] = {kNaN, -kInf, -7.0f, -3.0f, -1.5f, -0.0f, 0.0f, 0.5f, 2.0f, 3.0f, 6.5f, kInf};
    float in[Lanes];
    for (int i = 0; i < Lanes; ++i) in[i] = values[i % 12];
    const V x = sol_vload<V>(in);
    float relu[Lanes], clamp[Lanes], hardswish[Lanes], hardsigmoid[Lanes];
    sol_vstore(relu, sol_vrelu(x));
    sol_vstore(clamp, sol_vclamp(x, -1.0f, 2.0f));
    sol_vstore(hardswish, sol_vhardswish(x));
    sol_vstore(hardsigmoid, sol_vhardsigmoid(x));
    auto same = [](float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; };
    for (int i = 0; i < Lanes; ++i) {
        EXPECT_PRED2(same, relu[i], sol_relu(in[i])) << "lane " << i;
        EXPECT_PRED2(same, clamp[i], sol_clamp(in[i], -1.0f, 2.0f)) << "lane " << i;
        EXPECT_PRED2(same, hardswish[i], sol_hardswish(in[i])) << "lane " << i;
        EXPECT_PRED2(same, hardsigmoid[i], sol_hardsigmoid(in[i])) << "lane " << i;
    }
    float splat[Lanes];
    sol_vstore(splat, sol_vsplat<V>(1.25f));
    for (int i = 0; i < Lanes; ++i) EXPECT_EQ(splat[i], 1.25f);
}

TEST(KernelPrologue, VectorHelpersMatchTheScalarOnesLaneByLane) {
    expect_vector_helpers_match_scalar<sol_f32x16, 16>();
    expect_vector_helpers_match_scalar<sol_f32x8, 8>();
}

}  // namespace
