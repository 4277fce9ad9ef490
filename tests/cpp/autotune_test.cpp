// Autotuning (runtime/autotune.h): a library call that generated code can
// also run is timed both ways while the model loads, the faster kept, and the
// choice cached next to the compiled module per thread count, so loading the
// same model again measures nothing. Whichever side wins, results are right.
#include <gtest/gtest.h>

#include <omp.h>

#include <filesystem>
#include <fstream>

#include "compiled_model_helpers.h"
#include "reference_ops.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;
namespace ref = soltest::reference;

constexpr ref::Index kRows = 4, kK = 64, kN = 48;

// relu(x @ w^T + b): oneDNN's inner product or a generated kernel.
ir::Graph linear_graph() {
    ir::Graph g;
    const int x = g.add_input("x", {kRows, kK}, DType::Float32);
    const int y = g.add_node(Op::Linear, {x, g.add_parameter("w", {kN, kK}, DType::Float32),
                                          g.add_parameter("b", {kN}, DType::Float32)},
                             {}, "fc");
    g.set_outputs({g.add_node(Op::Relu, {y}, {}, "relu")});
    return g;
}

void expect_linear_right(sol::runtime::CompiledModel& model, const std::string& context) {
    Tensors inputs{{"x", random_floats(kRows * kK, 41)}};
    Tensors params{{"w", random_floats(kN * kK, 42)}, {"b", random_floats(kN, 43)}};
    auto expected = ref::linear(inputs.at("x"), kRows, kK, params.at("w"), kN, params.at("b"));
    for (float& v : expected) v = std::max(v, 0.0f);
    const auto out = run_model(model, inputs, params, true);
    EXPECT_LE(max_abs_difference(out[0], expected), 1e-4f) << context;
}

std::filesystem::path tuning_file(const sol::runtime::CompiledModel& model) {
    return std::filesystem::path(model.library_path())
        .replace_extension(".tuning-" + std::to_string(omp_get_max_threads()) + "t");
}

#ifdef SOL_HAVE_DNNL
TEST_F(FreshCache, MeasuresOnceThenReadsTheChoiceFromTheCache) {
    ir::Graph g = linear_graph();
    auto first = compile_for_host(g, {.autotuning = true, .threads = 0});
    EXPECT_EQ(first->tuned_calls(), 1);
    EXPECT_EQ(first->measured_calls(), 1);
    EXPECT_TRUE(std::filesystem::exists(tuning_file(*first)));
    expect_linear_right(*first, "first load");

    ir::Graph again = linear_graph();
    auto second = compile_for_host(again, {.autotuning = true, .threads = 0});
    EXPECT_EQ(second->tuned_calls(), 1);
    EXPECT_EQ(second->measured_calls(), 0) << "the cached choice is reused";
    EXPECT_EQ(second->library_calls(), first->library_calls()) << "the same choice";
    expect_linear_right(*second, "second load");
}

// Each side of the choice, forced through the cached file, computes the
// same result; generated code then replaces the library call.
TEST_F(FreshCache, EitherChoiceGivesTheSameResult) {
    ir::Graph g = linear_graph();
    auto measured = compile_for_host(g, {.autotuning = true, .threads = 0});
    for (const char* choice : {"dfp", "library 0"}) {
        std::ofstream(tuning_file(*measured)) << "0 " << choice << "\n";
        ir::Graph forced = linear_graph();
        auto model = compile_for_host(forced, {.autotuning = true, .threads = 0});
        EXPECT_EQ(model->measured_calls(), 0);
        EXPECT_EQ(model->library_calls(), std::string(choice) == "dfp" ? 0u : 1u) << choice;
        expect_linear_right(*model, choice);
    }
}

// Off: the heuristic (the library wherever it runs the layer), no timing.
TEST_F(FreshCache, OffKeepsTheHeuristic) {
    ir::Graph g = linear_graph();
    auto model = compile_for_host(g, {.autotuning = false, .threads = 0});
    EXPECT_EQ(model->tuned_calls(), 0);
    EXPECT_EQ(model->library_calls(), 1u);
    EXPECT_FALSE(std::filesystem::exists(tuning_file(*model)));
}

// Generated convolutions read their input row-major: a convolution whose
// input is channel-blocked has no generated alternative, so a cached "dfp"
// for it is ignored and it stays with oneDNN.
TEST_F(FreshCache, OnlyRowMajorInputsHaveAGeneratedAlternative) {
    // Blocks, where oneDNN's preferred layout differs from the graph's
    // (NHWC: it is the same), so conv2 has two library variants to time.
    ScopedEnv layout("SOL_LAYOUT", std::string("blocked"));
    auto build = [] {
        ir::Graph g;
        const int x = g.add_input("x", {1, 8, 10, 10}, DType::Float32);
        const int c1 = g.add_node(Op::Conv2d, {x, g.add_parameter("w1", {32, 8, 3, 3}, DType::Float32)},
                                  attrs({{"padding", Ints{1, 1}}}), "conv1");  // row-major in, blocked out
        const int c2 = g.add_node(Op::Conv2d, {g.add_node(Op::Relu, {c1}, {}, ""),
                                               g.add_parameter("w2", {32, 32, 3, 3}, DType::Float32)},
                                  attrs({{"padding", Ints{1, 1}}}), "conv2");  // blocked in
        g.set_outputs({c2});
        return g;
    };
    ir::Graph g = build();
    auto measured = compile_for_host(g, {.autotuning = true, .threads = 0});
    EXPECT_EQ(measured->measured_calls(), 2) << "both convolutions have more than one way to run";
    std::ofstream(tuning_file(*measured)) << "0 dfp\n1 dfp\n";
    ir::Graph again = build();
    auto forced = compile_for_host(again, {.autotuning = true, .threads = 0});
    EXPECT_EQ(forced->measured_calls(), 0);
    EXPECT_EQ(forced->library_calls(), 1u) << "conv1 generated, conv2 still oneDNN";
}

// A convolution between row-major tensors runs in oneDNN either on them
// directly or reordered into oneDNN's blocked layout and back (variant 1;
// oneDNN offers both on AVX2 and AVX-512 machines), and on AVX-512 also by
// Winograd (variant 2): each runs when chosen, and all give the reference
// result.
ir::Graph conv3x3_graph() {
    ir::Graph g;
    const int x = g.add_input("x", {2, 32, 9, 9}, DType::Float32);
    g.set_outputs({g.add_node(Op::Conv2d, {x, g.add_parameter("w", {32, 32, 3, 3}, DType::Float32)},
                              attrs({{"padding", Ints{1, 1}}}), "conv")});
    return g;
}

TEST_F(FreshCache, EveryLibraryVariantGivesTheSameResult) {
    const auto build = conv3x3_graph;
    ir::Graph g = build();
    auto measured = compile_for_host(g, {.autotuning = true, .threads = 0});
    Tensors inputs{{"x", random_floats(2 * 32 * 81, 51)}};
    Tensors params{{"w", random_floats(32 * 32 * 9, 52)}};
    ref::Index oh = 0, ow = 0;
    ref::Conv2dParams padded;
    padded.pad_h = 1, padded.pad_w = 1;
    const auto expected = ref::conv2d(inputs.at("x"), 2, 32, 9, 9, params.at("w"), 32, 3, 3, {}, padded, oh, ow);
    ScopedEnv profiling("SOL_PROFILE", "1");  // the profile names the variant each step runs
    const bool avx512 = has_avx512_core();
    std::vector<std::string> choices{"library 0", "library 1"};
    if (avx512) choices.push_back("library 2");
    for (const std::string& choice : choices) {
        std::ofstream(tuning_file(*measured)) << "0 " << choice << "\n";
        ir::Graph forced = build();
        auto model = compile_for_host(forced, {.autotuning = true, .threads = 0});
        EXPECT_EQ(model->library_calls(), 1u) << choice;
        ASSERT_EQ(model->profile().size(), 1u);
        const std::string step = model->profile()[0].first;  // profile() returns a copy
        EXPECT_EQ(step.find("variant 1") != std::string::npos, choice == "library 1") << step;
        EXPECT_EQ(step.find("wino") != std::string::npos, choice == "library 2") << step;
        const auto out = run_model(*model, inputs, params, true);
        EXPECT_LE(max_abs_difference(out[0], expected), 1e-4f) << choice;
    }
}

// The cache names the variant it chose: where this machine lists another
// variant under that index (a cache shared with another CPU, or a oneDNN
// update), or none at all, the call is measured again; a choice saved
// without a name is taken as it is.
TEST_F(FreshCache, AVariantListedDifferentlyIsMeasuredAgain) {
    ir::Graph g = conv3x3_graph();
    auto measured = compile_for_host(g, {.autotuning = true, .threads = 0});
    ASSERT_EQ(measured->measured_calls(), 1);
    std::string saved;
    std::getline(std::ifstream(tuning_file(*measured)), saved);
    if (saved.rfind("0 library ", 0) == 0)
        EXPECT_GT(saved.size(), std::string("0 library 0").size()) << "the chosen variant's name: " << saved;
    struct Case {
        const char* line;
        int measured;
    };
    for (const Case& c : {Case{"0 library 1 another_library:some_isa", 1}, Case{"0 library 9", 1},
                          Case{"0 library 1", 0}}) {
        std::ofstream(tuning_file(*measured)) << c.line << "\n";
        ir::Graph again = conv3x3_graph();
        auto model = compile_for_host(again, {.autotuning = true, .threads = 0});
        EXPECT_EQ(model->measured_calls(), c.measured) << c.line;
    }
}
#endif

}  // namespace
