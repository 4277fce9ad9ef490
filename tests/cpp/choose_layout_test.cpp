// The network-wide layout choice (runtime/choose_layout.h) through the real
// host device: a convolution network is compiled in each of the host's
// layouts and timed, the winner kept and cached, so compiling it again
// measures nothing; whichever layout runs, the results match the NCHW
// reference. Where there is nothing to choose (a layout asked for,
// autotuning off, training graphs, no image tensors) it compiles once, and
// a network with short calls keeps the device's own layout untimed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compiled_model_helpers.h"
#include "reference_ops.h"
#include "sol/error.h"
#include "sol/jit/compile_cache.h"
#include "sol/runtime/choose_layout.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;
using ref::Index;

constexpr Index N = 2, CIN = 16, C = 32, H = 8, W = 8;

// r = relu(conv3x3(x) + b1); y = relu(conv1x1(r) + b2 + r): 32-channel
// intermediates, which the host lays out as NHWC or NCHW16c.
ir::Graph conv_network() {
    ir::Graph g;
    auto param = [&g](const char* name, ir::Shape shape) { return g.add_parameter(name, shape, DType::Float32); };
    const int x = g.add_input("x", {N, CIN, H, W}, DType::Float32);
    const int r = g.add_node(
        Op::Relu,
        {g.add_node(Op::Conv2d, {x, param("w1", {C, CIN, 3, 3}), param("b1", {C})}, attrs({{"padding", Ints{1, 1}}}),
                    "conv1")},
        {}, "relu1");
    const int c2 = g.add_node(Op::Conv2d, {r, param("w2", {C, C, 1, 1}), param("b2", {C})}, {}, "conv2");
    g.set_outputs({g.add_node(Op::Relu, {g.add_node(Op::Add, {c2, r}, {}, "residual")}, {}, "relu2")});
    return g;
}

void expect_network_right(sol::runtime::CompiledModel& model, const std::string& context) {
    Tensors inputs{{"x", random_floats(N * CIN * H * W, 1)}};
    Tensors params{{"w1", random_floats(C * CIN * 9, 2, -0.2f, 0.2f)},
                   {"b1", random_floats(C, 3)},
                   {"w2", random_floats(C * C, 4, -0.2f, 0.2f)},
                   {"b2", random_floats(C, 5)}};
    Index oh = 0, ow = 0;
    const auto r = ref::relu(ref::conv2d(inputs.at("x"), N, CIN, H, W, params.at("w1"), C, 3, 3, params.at("b1"),
                                         {.pad_h = 1, .pad_w = 1}, oh, ow));
    auto expected = ref::conv2d(r, N, C, H, W, params.at("w2"), C, 1, 1, params.at("b2"), {}, oh, ow);
    for (std::size_t k = 0; k < expected.size(); ++k) expected[k] = std::max(expected[k] + r[k], 0.0f);
    const auto out = run_model(model, inputs, params, true);
    EXPECT_LE(max_abs_difference(out[0], expected), 1e-4f) << context << " (layout " << model.layout() << ")";
}

// relu(x @ w^T): no image tensors, so every layout lowers it alike.
ir::Graph linear_graph() {
    ir::Graph g;
    const int x = g.add_input("x", {4, 64}, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, g.add_parameter("w", {32, 64}, DType::Float32)}, {}, "fc");
    g.set_outputs({g.add_node(Op::Relu, {y}, {}, "relu")});
    return g;
}

std::vector<std::filesystem::path> saved_choices() {
    std::vector<std::filesystem::path> found;
    for (const auto& entry : std::filesystem::directory_iterator(sol::jit::cache_directory()))
        if (entry.path().extension() == ".layout") found.push_back(entry.path());
    return found;
}

class ChooseLayout : public FreshCache {
protected:
    std::unique_ptr<sol::runtime::CompiledModel> compile(ir::Graph graph, sol::runtime::CompileOptions options) {
        sol::passes::run_pipeline(graph);
        return sol::runtime::compile_fastest_layout(graph, device_, options);
    }
    ScopedEnv no_forced_layout_{"SOL_LAYOUT", std::nullopt};
    sol::devices::Device& device_ = sol::devices::find_device("x86", 0);
};

TEST_F(ChooseLayout, TimesEachLayoutOnceThenReadsTheChoiceFromTheCache) {
    ScopedEnv time_every_network{"SOL_LAYOUT_TIMING_MS", "0"};
    const std::vector<std::string> layouts = device_.layouts();
    ASSERT_GE(layouts.size(), 2u) << "the host offers channels last and channel blocks";
    auto first = compile(conv_network(), {.autotuning = true});
    EXPECT_EQ(first->timed_layouts(), static_cast<int>(layouts.size()));
    EXPECT_NE(std::find(layouts.begin(), layouts.end(), first->layout()), layouts.end()) << first->layout();
    expect_network_right(*first, "measured");
    const auto saved = saved_choices();
    ASSERT_EQ(saved.size(), 1u) << "the choice is cached";

    auto again = compile(conv_network(), {.autotuning = true});
    EXPECT_EQ(again->layout(), first->layout());
    EXPECT_EQ(again->timed_layouts(), 0) << "read from the cache";
    EXPECT_EQ(saved_choices().size(), 1u);

    // The cached choice is what the next compile uses, whichever it names.
    for (const std::string& layout : layouts) {
        const std::string key = saved.front().stem().string();
        const auto partial = sol::jit::temporary_path(key, ".layout");
        std::ofstream(partial) << layout << '\n';
        sol::jit::store_artifact(key, ".layout", partial);
        auto forced = compile(conv_network(), {.autotuning = true});
        EXPECT_EQ(forced->layout(), layout);
        expect_network_right(*forced, "from the cache");
    }

    // A damaged entry (checksum mismatch) is measured again, not trusted.
    std::ofstream(saved.front()) << "no such layout\n";
    auto remeasured = compile(conv_network(), {.autotuning = true});
    EXPECT_EQ(remeasured->timed_layouts(), static_cast<int>(layouts.size()));
    expect_network_right(*remeasured, "measured again");
}

// Calls shorter than SOL_LAYOUT_TIMING_MS keep the device's own layout
// without compiling another, and that decision is cached too. (This
// network's calls take microseconds, but on a loaded machine a call of
// two OpenMP threads can wait milliseconds for a core: the threshold here
// is far above any of that.)
TEST_F(ChooseLayout, ShortCallsKeepTheDevicesOwnLayoutUntimed) {
    ScopedEnv threshold{"SOL_LAYOUT_TIMING_MS", "100000"};
    auto model = compile(conv_network(), {.autotuning = true});
    EXPECT_EQ(model->layout(), device_.layouts().front());
    EXPECT_EQ(model->timed_layouts(), 0);
    EXPECT_EQ(saved_choices().size(), 1u);
    expect_network_right(*model, "untimed");
}

TEST_F(ChooseLayout, AMalformedTimingThresholdIsNamed) {
    ScopedEnv malformed{"SOL_LAYOUT_TIMING_MS", "5ms"};
    try {
        compile(conv_network(), {.autotuning = true});
        FAIL() << "expected a sol::Error";
    } catch (const sol::Error& error) {
        EXPECT_NE(std::string(error.what()).find("SOL_LAYOUT_TIMING_MS=5ms"), std::string::npos) << error.what();
    }
}

TEST_F(ChooseLayout, CompilesOnceWhereThereIsNothingToChoose) {
    const std::string own = device_.layouts().front();
    auto asked = compile(conv_network(), {.autotuning = true, .layout = "blocked"});
    EXPECT_EQ(asked->layout(), "blocked");
    expect_network_right(*asked, "asked for");
    EXPECT_EQ(compile(conv_network(), {.autotuning = false})->layout(), own) << "the heuristic";
    EXPECT_EQ(compile(conv_network(), {.autotuning = true, .weights_change_every_call = true})->layout(), own)
        << "a training step";
    EXPECT_EQ(compile(linear_graph(), {.autotuning = true})->layout(), own) << "no image tensors";
    EXPECT_TRUE(saved_choices().empty()) << "nothing was timed";
}

TEST_F(ChooseLayout, ForcedBySolLayout) {
    ScopedEnv forced{"SOL_LAYOUT", "plain"};
    EXPECT_EQ(device_.layouts(), std::vector<std::string>{"plain"});
    auto model = compile(conv_network(), {.autotuning = true});
    EXPECT_EQ(model->layout(), "plain");
    expect_network_right(*model, "SOL_LAYOUT=plain");
    EXPECT_TRUE(saved_choices().empty());
}

TEST_F(ChooseLayout, AnUnknownLayoutIsNamed) {
    try {
        compile(conv_network(), {.autotuning = true, .layout = "nhwc"});
        FAIL() << "expected a DeviceError";
    } catch (const sol::DeviceError& error) {
        EXPECT_NE(std::string(error.what()).find("'nhwc'"), std::string::npos) << error.what();
    }
}

}  // namespace
