// Channel-blocked layouts end to end through the real host device: one
// network whose intermediates have 32 (and 64, 80) channels, so the host's
// layout pass really blocks them by 16, compiled under {default,
// SOL_LAYOUT=plain, SOL_BACKENDS=dfp} and checked against the same naive
// NCHW reference. Every kernel kind that takes blocks is on the path: oneDNN
// convolutions (row-major in/blocked out, blocked in/row-major out, blocked
// in/out with a blocked residual), blocked max/avg/adaptive pooling, an
// elementwise kernel with a [1, C, 1, 1] parameter and a full-size residual,
// and channel concats of two blocked parts, of parts blocked differently
// (16 and 8 channels; with SOL_BACKENDS=dfp a blocked and a row-major part),
// and of a blocked part starting inside a block. A second graph puts
// PyTorch's pooling window rules through the blocked pooling kernel.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "compiled_model_helpers.h"
#include "reference_ops.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;
using ref::Index;

constexpr Index N = 2, CIN = 8, H = 12, W = 12, C = 32, C2 = 24, P = 6;  // P: spatial size after the max pool

// x [2, 8, 12, 12]:
//   r1 = relu(conv1(x) + b1)                  [2, 32, 12, 12]  conv 3x3 pad 1
//   m  = maxpool 3x3 s2 p1 (r1)               [2, 32, 6, 6]
//   a  = avgpool 3x3 s1 p1 (m)                [2, 32, 6, 6]    (read twice: stays its own kernel)
//   e  = relu(a * g + m)                      [2, 32, 6, 6]    g [1, 32, 1, 1]; an elementwise kernel
//   c2 = conv2(e)                             [2, 24, 6, 6]    1x1; 24 channels: blocked by 8 at most
//   f  = relu(conv3(e) + m)                   [2, 32, 6, 6]    3x3 pad 1, residual post-op
//   out0 = adaptive_avg_pool 2x2 (concat(a, f))        [2, 64, 2, 2]
//   out1 = adaptive_avg_pool 4x4 (concat(c2, e, c2))   [2, 80, 4, 4]  e starts at channel 24
//   out2 = concat(e, c2)                               [2, 56, 6, 6]  a row-major output
ir::Graph network() {
    ir::Graph g;
    auto param = [&g](const char* name, ir::Shape shape) { return g.add_parameter(name, shape, DType::Float32); };
    auto cat = [&g](std::vector<int> parts) {
        return g.add_node(Op::Concat, std::move(parts), attrs({{"axis", std::int64_t{1}}}), "cat");
    };
    const int x = g.add_input("x", {N, CIN, H, W}, DType::Float32);
    const int conv1 = g.add_node(Op::Conv2d, {x, param("w1", {C, CIN, 3, 3}), param("b1", {C})},
                                 attrs({{"padding", Ints{1, 1}}}), "conv1");
    const int r1 = g.add_node(Op::Relu, {conv1}, {}, "relu1");
    const int m = g.add_node(Op::MaxPool2d, {r1},
                             attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}}), "max");
    const int a = g.add_node(Op::AvgPool2d, {m},
                             attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{1, 1}}, {"padding", Ints{1, 1}}}), "avg");
    const int scaled = g.add_node(Op::Mul, {a, param("g", {1, C, 1, 1})}, {}, "scale");
    const int e = g.add_node(Op::Relu, {g.add_node(Op::Add, {scaled, m}, {}, "residual")}, {}, "relu2");
    const int c2 = g.add_node(Op::Conv2d, {e, param("w2", {C2, C, 1, 1})}, {}, "conv2");
    const int conv3 = g.add_node(Op::Conv2d, {e, param("w3", {C, C, 3, 3})}, attrs({{"padding", Ints{1, 1}}}), "conv3");
    const int f = g.add_node(Op::Relu, {g.add_node(Op::Add, {conv3, m}, {}, "residual3")}, {}, "relu3");
    const int out0 = g.add_node(Op::AdaptiveAvgPool2d, {cat({a, f})}, attrs({{"output_size", Ints{2, 2}}}), "gap0");
    const int out1 =
        g.add_node(Op::AdaptiveAvgPool2d, {cat({c2, e, c2})}, attrs({{"output_size", Ints{4, 4}}}), "gap1");
    g.set_outputs({out0, out1, cat({e, c2})});
    return g;
}

// Channel concatenation of NCHW images with `plane` pixels each.
std::vector<float> concat(const std::vector<std::pair<const std::vector<float>*, Index>>& parts, Index plane) {
    std::vector<float> out;
    for (Index n = 0; n < N; ++n)
        for (const auto& [data, channels] : parts)
            out.insert(out.end(), data->begin() + n * channels * plane, data->begin() + (n + 1) * channels * plane);
    return out;
}

std::vector<std::vector<float>> expected(const Tensors& in, const Tensors& p) {
    Index oh = 0, ow = 0;
    ref::Conv2dParams pad1;
    pad1.pad_h = pad1.pad_w = 1;
    const auto r1 = ref::relu(ref::conv2d(in.at("x"), N, CIN, H, W, p.at("w1"), C, 3, 3, p.at("b1"), pad1, oh, ow));
    const auto m = ref::max_pool2d(r1, N * C, H, W, {3, 3, 2, 2, 1, 1}, oh, ow);
    const auto a = ref::avg_pool2d(m, N * C, P, P, {3, 3, 1, 1, 1, 1}, oh, ow);
    std::vector<float> e(a.size());
    for (std::size_t i = 0; i < e.size(); ++i) e[i] = std::max(a[i] * p.at("g")[(i / (P * P)) % C] + m[i], 0.0f);
    const auto c2 = ref::conv2d(e, N, C, P, P, p.at("w2"), C2, 1, 1, {}, ref::Conv2dParams{}, oh, ow);
    auto f = ref::conv2d(e, N, C, P, P, p.at("w3"), C, 3, 3, {}, pad1, oh, ow);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = std::max(f[i] + m[i], 0.0f);
    const auto cat1 = concat({{&a, C}, {&f, C}}, P * P);
    const auto cat3 = concat({{&c2, C2}, {&e, C}, {&c2, C2}}, P * P);
    return {ref::adaptive_avg_pool2d(cat1, N * 2 * C, P, P, 2, 2),
            ref::adaptive_avg_pool2d(cat3, N * (2 * C2 + C), P, P, 4, 4), concat({{&e, C}, {&c2, C2}}, P * P)};
}

// The layout SOL_LAYOUT=`layout` gives: the host's default when unset
// (channels last on AVX-512, where these tests run).
std::string effective_layout(const std::optional<std::string>& layout) {
    return layout ? *layout : __builtin_cpu_supports("avx512f") ? "channels_last" : "blocked";
}

// Which cluster results the host device blocks: "op:channels" per tensor.
std::multiset<std::string> blocked_results(const ir::Graph& fused, const std::optional<std::string>& layout) {
    const bool channels_last = effective_layout(layout) == "channels_last";
    ir::Graph lowered = fused;  // the compiled model lowers its own copy the same way
    sol::devices::find_device("x86", 0).lower(lowered, "");
    std::multiset<std::string> names;
    for (const ir::Node& node : lowered.nodes()) {
        const ir::Tensor& t = lowered.tensor(node.output);
        if (t.channel_block != 0) {
            // NHWC: all channels one block. Blocked on AVX-512: one register
            // of floats per block, half a register where the channels fill
            // no whole register.
            EXPECT_EQ(t.channel_block, channels_last ? t.shape[1] : t.shape[1] % 16 == 0 ? 16 : 8)
                << "channels " << t.shape[1];
            names.insert(std::string(ir::name(node.op)) + ":" + std::to_string(t.shape[1]));
        }
    }
    return names;
}

struct Setting {
    const char* name;
    std::optional<std::string> layout;    // SOL_LAYOUT
    std::optional<std::string> backends;  // SOL_BACKENDS
};
void PrintTo(const Setting& setting, std::ostream* out) { *out << setting.name; }  // readable failures

class CompiledLayoutTest : public FreshCache, public ::testing::WithParamInterface<Setting> {
protected:
    // The generated C++ of the one module this test compiled (the cache is fresh).
    std::string generated_source() const {
        std::string text;
        for (const auto& entry : std::filesystem::directory_iterator(cache_.path()))
            if (entry.path().extension() == ".cpp") {
                std::ostringstream content;
                content << std::ifstream(entry.path()).rdbuf();
                text += content.str();
            }
        return text;
    }
};

// Blocked and row-major code paths against one reference: any layout
// addressing bug (a lane, a block stride, a concat offset) shows as a wrong
// number here, and the layout checks below show the blocked path really ran.
TEST_P(CompiledLayoutTest, NetworkMatchesTheReference) {
    const Setting& setting = GetParam();
    ScopedEnv layout("SOL_LAYOUT", setting.layout);
    ScopedEnv backends("SOL_BACKENDS", setting.backends);
    ir::Graph g = network();
    auto model = compile_for_host(g);  // g is now the fused graph

    const bool plain = setting.layout == "plain";
    const bool dfp_only = setting.backends.has_value();
    const std::multiset<std::string> blocked = blocked_results(g, setting.layout);
    // Generated kernels alone block the pooling -> elementwise/concat ->
    // adaptive pooling links; the conv kernels take only row-major tensors.
    const std::multiset<std::string> generated_only{"avg_pool2d:32", "concat:64", "concat:80"};
    if (plain) {
        EXPECT_TRUE(blocked.empty()) << "SOL_LAYOUT=plain";
    } else {
        for (const std::string& name : generated_only) EXPECT_EQ(blocked.count(name), 1u) << name;
        if (dfp_only) EXPECT_EQ(blocked, generated_only);
    }
#ifdef SOL_HAVE_DNNL
    EXPECT_EQ(model->library_calls(), dfp_only ? 0u : 3u) << "three oneDNN convolutions";
    if (!plain && !dfp_only) {
        // oneDNN's convolutions take NHWC and nChw16c on AVX-512, so the
        // conv outputs and inputs are blocked as well.
        EXPECT_GT(blocked.size(), generated_only.size());
        EXPECT_EQ(blocked.count("max_pool2d:32"), 1u) << "read by a pool, an elementwise kernel and a conv";
    }
#else
    EXPECT_EQ(model->library_calls(), 0u);
#endif
    // The generated code walks channel blocks exactly when blocking is on.
    const std::string source = generated_source();
    ASSERT_FALSE(source.empty());
    EXPECT_EQ(source.find("blocks of B channels") != std::string::npos, !plain) << "blocked pooling kernel";

    Tensors inputs{{"x", random_floats(N * CIN * H * W, 31, -2, 2)}};
    Tensors params{{"w1", random_floats(C * CIN * 9, 32, -0.3f, 0.3f)}, {"b1", random_floats(C, 33)},
                   {"g", random_floats(C, 34, -1.5f, 1.5f)},           {"w2", random_floats(C2 * C, 35, -0.3f, 0.3f)},
                   {"w3", random_floats(C * C * 9, 36, -0.1f, 0.1f)}};
    const auto want = expected(inputs, params);
    auto out = run_model(*model, inputs, params, true);
    ASSERT_EQ(out.size(), want.size());
    // Values are O(1) and sums run over at most 288 terms in float: 1e-4
    // covers reassociation, not a misplaced element.
    for (std::size_t k = 0; k < out.size(); ++k)
        EXPECT_LE(max_abs_difference(out[k], want[k]), 1e-4f) << "output " << k << " with " << setting.name;

    // A second call reuses the workspace (and oneDNN's reordered weights).
    out = run_model(*model, inputs, params, false);
    for (std::size_t k = 0; k < out.size(); ++k)
        EXPECT_LE(max_abs_difference(out[k], want[k]), 1e-4f) << "second call, output " << k;
}

// PyTorch's window rules (ceil_mode overhang, dilation, count_include_pad,
// divisor_override) on a blocked input with three blocks and odd image
// sizes; the blocked input comes from an elementwise kernel that reads a
// row-major graph input and a rank-3 [C, 1, 1] parameter.
TEST_P(CompiledLayoutTest, BlockedPoolingFollowsTheWindowRules) {
    const Setting& setting = GetParam();
    ScopedEnv layout("SOL_LAYOUT", setting.layout);
    ScopedEnv backends("SOL_BACKENDS", setting.backends);
    // 48 channels: three blocks of 16, or one NHWC pixel of three registers;
    // 58: row-major when blocked, NHWC reduced two lanes at a time.
    for (const Index C3 : {48, 58}) {
        SCOPED_TRACE(std::to_string(C3) + " channels");
        constexpr Index H3 = 9, W3 = 11;
        ir::Graph g;
        const int x = g.add_input("x", {1, C3, H3, W3}, DType::Float32);
        const int scaled = g.add_node(Op::Mul, {x, g.add_parameter("s", {C3, 1, 1}, DType::Float32)}, {}, "");
        const int y = g.add_node(Op::Relu, {scaled}, {}, "");
        const ref::PoolParams avg_ceil{3, 3, 2, 2, 1, 1, 1, 1, true, false};
        const ref::PoolParams max_dilated{3, 3, 2, 2, 1, 1, 2, 2, true};
        const ref::PoolParams avg_divisor{2, 2, 2, 2, 0, 0, 1, 1, false, true, 3};
        const Ints k3{3, 3}, s2{2, 2}, p1{1, 1};
        g.set_outputs({g.add_node(Op::AvgPool2d, {y},
                                  attrs({{"kernel", k3}, {"stride", s2}, {"padding", p1}, {"ceil_mode", std::int64_t{1}},
                                         {"count_include_pad", std::int64_t{0}}}), ""),
                       g.add_node(Op::MaxPool2d, {y},
                                  attrs({{"kernel", k3}, {"stride", s2}, {"padding", p1}, {"dilation", Ints{2, 2}},
                                         {"ceil_mode", std::int64_t{1}}}), ""),
                       g.add_node(Op::AvgPool2d, {y},
                                  attrs({{"kernel", Ints{2, 2}}, {"divisor_override", std::int64_t{3}}}), "")});
        auto model = compile_for_host(g);
        const std::multiset<std::string> blocked = blocked_results(g, setting.layout);
        const bool row_major = setting.layout == "plain" || (effective_layout(setting.layout) == "blocked" && C3 % 8 != 0);
        EXPECT_EQ(blocked, row_major ? std::multiset<std::string>{} : std::multiset<std::string>{"relu:" + std::to_string(C3)});

        Tensors inputs{{"x", random_floats(C3 * H3 * W3, 41, -2, 2)}};
        Tensors params{{"s", random_floats(C3, 42)}};
        std::vector<float> act(inputs["x"].size());
        for (std::size_t i = 0; i < act.size(); ++i)
            act[i] = std::max(inputs["x"][i] * params["s"][i / (H3 * W3)], 0.0f);
        Index oh = 0, ow = 0;
        const std::vector<std::vector<float>> want{ref::avg_pool2d(act, C3, H3, W3, avg_ceil, oh, ow),
                                                   ref::max_pool2d(act, C3, H3, W3, max_dilated, oh, ow),
                                                   ref::avg_pool2d(act, C3, H3, W3, avg_divisor, oh, ow)};
        const auto out = run_model(*model, inputs, params, true);
        ASSERT_EQ(out.size(), want.size());
        for (std::size_t k = 0; k < out.size(); ++k)
            EXPECT_LE(max_abs_difference(out[k], want[k]), 1e-5f) << "output " << k << " with " << setting.name;
    }
}

INSTANTIATE_TEST_SUITE_P(Settings, CompiledLayoutTest,
                         ::testing::Values(Setting{"channels_last", std::string("channels_last"), std::nullopt},
                                           Setting{"blocked", std::string("blocked"), std::nullopt},
                                           Setting{"plain", std::string("plain"), std::nullopt},
                                           Setting{"dfp", std::nullopt, std::string("dfp")}),
                         [](const ::testing::TestParamInfo<Setting>& info) { return std::string(info.param.name); });

}  // namespace
