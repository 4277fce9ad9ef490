// Averages before a pointwise convolution instead of after it: a 1x1
// convolution is the same affine map at every pixel, and an average pool
// whose windows' weights sum to one commutes with any affine map, so
//
//     avg_pool(conv1x1(x, W, b)) == conv1x1(avg_pool(x), W, b)
//
// up to rounding. The convolution then runs on the pooled pixels only: a 2x2
// pool leaves it a quarter of its work. DenseNet's transition layers
// (BN -> ReLU -> conv1x1 -> avg_pool 2x2) are 11% of DenseNet-121's
// FLOPs; after the swap their BN -> ReLU -> pool also becomes one depth-first
// kernel that never stores the activated tensor.
//
// Moves the pool only where the result is exactly the same function:
// * the convolution is 1x1, stride 1, no padding (any groups or bias);
// * the pool is avg_pool2d without padding and without divisor_override
//   (every window then divides by its own count of pixels, also ceil_mode's
//   partial windows), or adaptive_avg_pool2d;
// * nothing else reads the convolution's result;
// and only where it pays: the multiply-adds the convolution saves exceed the
// additions the pool gains when it pools more channels (the input's) than
// before.
#pragma once

#include "sol/ir/graph.h"

namespace sol::passes {

// Returns how many pools were moved before their convolution.
int pool_before_pointwise_conv(ir::Graph& graph);

}  // namespace sol::passes
