// deploy/: the graph and plan formats read back exactly, and a deployed
// library, loaded like a user's program would load it, computes what the
// compiled model computes.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "compiled_model_helpers.h"
#include "sol/deploy/deployment_plan.h"
#include "sol/deploy/write_library.h"
#include "sol/error.h"
#include "sol/ir/serialize.h"

namespace {

using namespace soltest;
using ir::DType;
using ir::Op;

// conv -> BN -> relu -> max pool -> 1x1 conv -> (+ 0.5, spatial mean):
// folded BatchNorm (a parameter stage), library and generated kernels,
// blocked layouts, two outputs.
ir::Graph small_network(int batch) {
    ir::Graph g;
    const int x = g.add_input("x", {batch, 16, 10, 10}, DType::Float32);
    const int conv = g.add_node(Op::Conv2d,
                                {x, g.add_parameter("conv.weight", {32, 16, 3, 3}, DType::Float32),
                                 g.add_parameter("conv.bias", {32}, DType::Float32)},
                                attrs({{"padding", Ints{1, 1}}}), "net.conv (model.py:3)");
    std::vector<int> bn_inputs{conv};
    for (const char* name : {"bn.running_mean", "bn.running_var", "bn.weight", "bn.bias"})
        bn_inputs.push_back(g.add_parameter(name, {32}, DType::Float32));
    const int bn = g.add_node(Op::BatchNorm, bn_inputs, attrs({{"eps", 1e-5}}), "net.bn");
    const int relu = g.add_node(Op::Relu, {bn}, {}, "net.relu");
    const int pool = g.add_node(Op::MaxPool2d, {relu},
                                attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1}}}), "pool");
    const int head = g.add_node(Op::Conv2d, {pool, g.add_parameter("head.weight", {32, 32, 1, 1}, DType::Float32)},
                                {}, "net.head");
    const int shifted = g.add_node(Op::Add, {head, g.add_constant(0.5, DType::Float32)}, {}, "shift");
    g.set_outputs({shifted, g.add_node(Op::Mean, {head}, attrs({{"axes", Ints{2, 3}}}), "mean")});
    return g;
}

Tensors parameters_of(const sol::runtime::CompiledModel& model) {
    Tensors values;
    unsigned seed = 10;
    for (const auto& info : model.parameters()) {
        const bool variance = info.name == "bn.running_var";
        values[info.name] = random_floats(ir::element_count(info.shape), ++seed, variance ? 0.5f : -1.0f, 1.0f);
    }
    return values;
}

class DeployTest : public FreshCache {};

// Ids, node order, clusters and layouts of a lowered graph survive; floats
// are exact; writing the graph read back gives the same text.
TEST_F(DeployTest, SerializedGraphReadsBackExactly) {
    ir::Graph g = small_network(2);
    sol::passes::run_pipeline(g);
    sol::devices::find_device("x86", 0).lower(g, "");
    const std::string text = ir::serialize(g);
    const ir::Graph back = ir::deserialize(text);
    EXPECT_EQ(ir::serialize(back), text);
    ASSERT_EQ(back.tensor_count(), g.tensor_count());
    ASSERT_EQ(back.nodes().size(), g.nodes().size());
    int blocked = 0;
    for (std::size_t id = 0; id < g.tensor_count(); ++id) {
        const ir::Tensor &a = g.tensor(static_cast<int>(id)), &b = back.tensor(static_cast<int>(id));
        EXPECT_EQ(a.shape, b.shape);
        EXPECT_EQ(a.channel_block, b.channel_block);
        EXPECT_EQ(a.value, b.value);
        EXPECT_EQ(a.producer, b.producer);
        blocked += a.channel_block != 0;
    }
    EXPECT_GT(blocked, 0) << "the test means to carry layouts";
    for (std::size_t k = 0; k < g.nodes().size(); ++k) {
        EXPECT_EQ(g.nodes()[k].op, back.nodes()[k].op);
        EXPECT_EQ(g.nodes()[k].cluster, back.nodes()[k].cluster);
        EXPECT_EQ(g.nodes()[k].attrs, back.nodes()[k].attrs);
        EXPECT_EQ(g.nodes()[k].origin, back.nodes()[k].origin);
    }
    EXPECT_EQ(ir::to_text(back), ir::to_text(g));
}

TEST_F(DeployTest, MalformedTextIsAnErrorThatSaysWhere) {
    const std::string text = ir::serialize(small_network(1));
    for (const std::string& broken : {text.substr(0, text.size() / 2), std::string("sol-graph-1 tensors x"),
                                      std::string("not a graph")}) {
        try {
            ir::deserialize(broken);
            ADD_FAILURE() << "accepted: " << broken.substr(0, 60);
        } catch (const sol::Error& error) {
            EXPECT_NE(std::string(error.what()).find("serialized graph is malformed at byte"), std::string::npos)
                << error.what();
        }
    }
    EXPECT_THROW(sol::deploy::read_plan("sol-plan-1 3:x86 0 " + std::to_string(text.size()) + ":" + text +
                                        " calls 1 c 3:dfp 1:f 1 99 1 0 0 -1 0 0:"),
                 sol::Error)
        << "a call naming node 99 of a smaller graph";
}

// The plan carries the device and the CPU features its kernels need; a
// feature this CPU lacks (or does not know) is reported, not run into.
TEST_F(DeployTest, PlanCarriesDeviceAndCpuFeatures) {
    ir::Graph g = small_network(1);
    sol::passes::run_pipeline(g);
    const auto plan = sol::deploy::read_plan(sol::deploy::write_plan("x86", {"avx2", "sse-of-the-future"}, g, {}));
    EXPECT_EQ(plan.device, "x86");
    EXPECT_EQ(plan.cpu_features, (std::vector<std::string>{"avx2", "sse-of-the-future"}));
    EXPECT_EQ(ir::serialize(plan.graph), ir::serialize(g));
    EXPECT_EQ(sol::deploy::missing_cpu_features(sol::deploy::host_cpu_features()), std::vector<std::string>{});
    EXPECT_EQ(sol::deploy::missing_cpu_features({"sse-of-the-future"}), std::vector<std::string>{"sse-of-the-future"});
}

// The whole path: compile, deploy, dlopen the library, call its C API; the
// numbers are the compiled model's (the same kernels run), and the header
// states the shapes.
TEST_F(DeployTest, DeployedLibraryComputesWhatTheCompiledModelComputes) {
    ir::Graph g = small_network(2);
    auto model = compile_for_host(g, {.autotuning = false, .threads = 0, .keep_for_deployment = true});
    ASSERT_NE(model->deployment(), nullptr);
    ASSERT_GT(model->library_calls(), 0u) << "the test means to cover a library kernel";
    ASSERT_LT(model->library_calls(), model->kernel_calls()) << "and generated ones";
    Tensors params = parameters_of(*model);
    Tensors inputs{{"x", random_floats(2 * 16 * 10 * 10, 7)}};
    const auto expected = run_model(*model, inputs, params, true);
    for (const auto& values : expected)
        ASSERT_TRUE(std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); }));

    TempDir out;
    std::vector<const void*> values;
    for (const auto& info : model->parameters()) values.push_back(params.at(info.name).data());
    const auto files = sol::deploy::write_shared_library(
        *model, values,
        {.lib_name = "SmallNet", .func_name = "predict", .directory = out.path() / "lib",
         .runtime_archive = SOL_CORE_ARCHIVE, .include_directory = SOL_INCLUDE_DIR, .build_directory = out.path() / "build"});
    EXPECT_EQ(files.library, out.path() / "lib" / "libSmallNet.so");
    std::stringstream header;
    header << std::ifstream(files.header).rdbuf();
    EXPECT_NE(header.str().find("#define PREDICT_INPUT_SHAPE {2, 16, 10, 10}"), std::string::npos) << header.str();
    EXPECT_NE(header.str().find("#define PREDICT_OUTPUT0_SIZE 1600 "), std::string::npos) << header.str();
    EXPECT_NE(header.str().find("#define PREDICT_OUTPUT1_SHAPE {2, 32}"), std::string::npos) << header.str();
    EXPECT_NE(header.str().find("void predict(void* ctx, const float* input, float** output);"), std::string::npos);

    void* library = dlopen(files.library.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(library, nullptr) << dlerror();
    auto init = reinterpret_cast<void (*)(int)>(dlsym(library, "predict_init"));
    auto seed = reinterpret_cast<int (*)(int)>(dlsym(library, "predict_seed"));
    auto predict = reinterpret_cast<void (*)(void*, const float*, float**)>(dlsym(library, "predict"));
    ASSERT_TRUE(init && seed && predict);
    EXPECT_EQ(dlsym(library, "sol_deploy_plan"), nullptr) << "the plan stays hidden inside the library";
    init(0);
    EXPECT_EQ(seed(42), 0);
    EXPECT_EQ(seed(7), 42);
    std::vector<std::vector<float>> results;
    for (const auto& info : model->outputs())
        results.emplace_back(ir::element_count(info.shape), std::numeric_limits<float>::quiet_NaN());
    std::vector<float*> pointers{results[0].data(), results[1].data()};
    for (int call = 0; call < 2; ++call) {  // the first call prepares the weights, the second reuses them
        predict(nullptr, inputs["x"].data(), pointers.data());
        for (std::size_t k = 0; k < results.size(); ++k) EXPECT_EQ(max_abs_difference(results[k], expected[k]), 0.0f);
    }
    dlclose(library);
}

TEST_F(DeployTest, ANetworkWithTwoInputsIsRefusedWithTheReason) {
    ir::Graph g;
    const int a = g.add_input("a", {4}, DType::Float32), b = g.add_input("b", {4}, DType::Float32);
    g.set_outputs({g.add_node(Op::Add, {a, b}, {}, "")});
    auto model = compile_for_host(g, {.autotuning = false, .threads = 0, .keep_for_deployment = true});
    TempDir out;
    try {
        sol::deploy::write_shared_library(*model, {},
                                          {.lib_name = "Two", .func_name = "f", .directory = out.path(),
                                           .runtime_archive = SOL_CORE_ARCHIVE, .include_directory = SOL_INCLUDE_DIR,
                                           .build_directory = out.path() / "build"});
        ADD_FAILURE() << "deployed a two-input network";
    } catch (const sol::Error& error) {
        EXPECT_NE(std::string(error.what()).find("takes 2 inputs (a, b)"), std::string::npos) << error.what();
    }
}

}  // namespace
