// Convolution gradients through oneDNN's backward primitives (the default
// where oneDNN is built in) against SOL's generated reference loops
// (SOL_BACKENDS=dfp), whose numbers tests/python/test_training.py checks
// against PyTorch autograd. Strides, padding, dilation, groups and
// depthwise; both gradients; weights re-prepared after they change, and
// reordered inside each call for a training step's models
// (CompileOptions::weights_change_every_call), the forward convolution too.
#include <gtest/gtest.h>

#include "compiled_model_helpers.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

struct Case {
    const char* name;
    ir::Shape x, w;
    Ints stride, padding, dilation;
    std::int64_t groups;
};

const Case kCases[] = {
    {"3x3-pad1", {2, 8, 9, 7}, {16, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1},
    {"3x3-stride2", {2, 16, 11, 11}, {32, 16, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1},
    {"5x3-dilated", {1, 8, 12, 10}, {8, 8, 5, 3}, {1, 2}, {2, 1}, {2, 1}, 1},
    {"groups4", {2, 16, 8, 8}, {32, 4, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 4},
    {"depthwise-stride2", {2, 32, 10, 10}, {32, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 32},
    {"1x1", {4, 64, 7, 7}, {16, 64, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1},
};

ir::Shape output_shape(const Case& c) {
    ir::Graph g;
    const int x = g.add_input("x", c.x, DType::Float32);
    const int y = g.add_node(Op::Conv2d, {x, g.add_parameter("w", c.w, DType::Float32)},
                             attrs({{"stride", c.stride}, {"padding", c.padding}, {"dilation", c.dilation},
                                    {"groups", c.groups}}), "conv");
    return g.tensor(y).shape;
}

// dy -> conv2d_backward_data(dy, w) and conv2d_backward_weight(dy, x); the
// forward conv2d(x, w) beside them.
ir::Graph gradient_graph(const Case& c) {
    ir::Graph g;
    const ir::Shape dy_shape = output_shape(c);
    const int dy = g.add_input("dy", dy_shape, DType::Float32);
    const int x = g.add_input("x", c.x, DType::Float32);
    const int w = g.add_parameter("w", c.w, DType::Float32);
    auto conv_attrs = [&](const char* key, const ir::Shape& shape) {
        return attrs({{"stride", c.stride}, {"padding", c.padding}, {"dilation", c.dilation}, {"groups", c.groups},
                      {key, Ints(shape.begin(), shape.end())}});
    };
    g.set_outputs({g.add_node(Op::Conv2dBackwardData, {dy, w}, conv_attrs("input_shape", c.x), "dx"),
                   g.add_node(Op::Conv2dBackwardWeight, {dy, x}, conv_attrs("weight_shape", c.w), "dw"),
                   g.add_node(Op::Conv2d, {x, w},
                              attrs({{"stride", c.stride}, {"padding", c.padding}, {"dilation", c.dilation},
                                     {"groups", c.groups}}),
                              "y")});
    return g;
}

class ConvolutionGradientTest : public FreshCache, public ::testing::WithParamInterface<Case> {};

TEST_P(ConvolutionGradientTest, LibraryMatchesTheGeneratedReference) {
    const Case& c = GetParam();
    Tensors inputs{{"dy", random_floats(ir::element_count(output_shape(c)), 1)},
                   {"x", random_floats(ir::element_count(c.x), 2)}};
    Tensors parameters{{"w", random_floats(ir::element_count(c.w), 3)}};
    std::vector<std::vector<std::vector<float>>> results;  // [backend][call][output]
    for (const std::string setting : {"dfp", "dnn", "dnn, weights reordered per call"}) {
        ScopedEnv env("SOL_BACKENDS", setting.substr(0, 3));
        ir::Graph g = gradient_graph(c);
        const bool per_call = setting != "dfp" && setting != "dnn";
        auto model = compile_for_host(g, {.autotuning = false, .threads = 0, .keep_for_deployment = false,
                                          .weights_change_every_call = per_call});
#ifdef SOL_HAVE_DNNL
        EXPECT_EQ(model->library_calls(), setting == "dfp" ? 0u : 3u);
        // The data gradient keeps its weights reordered unless they change per call.
        if (setting == "dnn")
            EXPECT_GE(model->library_kept_bytes(), ir::element_count(c.w) * sizeof(float));
        else
            EXPECT_EQ(model->library_kept_bytes(), 0u) << setting;
#endif
        Tensors changed = parameters;
        results.push_back(run_model(*model, inputs, parameters, true));
        for (float& v : changed.at("w")) v *= -0.5f;  // new weights: the data gradient re-prepares them
        const auto second = run_model(*model, inputs, changed, true);
        results.back().insert(results.back().end(), second.begin(), second.end());
    }
    for (std::size_t k = 0; k < results[0].size(); ++k) {
        const auto& reference = results[0][k];
        float scale = 0.0f;
        for (float v : reference) scale = std::max(scale, std::abs(v));
        // Sums of up to a few thousand products of O(1) values in another order.
        for (std::size_t setting = 1; setting < results.size(); ++setting)
            EXPECT_LE(max_abs_difference(results[setting][k], reference), 1e-5f * scale + 1e-5f)
                << "output " << k << ", setting " << setting;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvolutionGradientTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) {
                             std::string name = info.param.name;
                             for (char& ch : name)
                                 if (ch == '-') ch = '_';
                             return name;
                         });

}  // namespace
