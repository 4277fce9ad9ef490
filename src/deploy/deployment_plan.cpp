#include "sol/deploy/deployment_plan.h"

#include <utility>

#include "sol/error.h"
#include "sol/ir/serialize.h"
#include "sol/support/text_format.h"

namespace sol::deploy {
namespace {

constexpr std::string_view kMagic = "sol-plan-1";
constexpr std::size_t kWeightAlignment = 64;  // a cache line, and an AVX-512 register

}  // namespace

std::string write_plan(const std::string& device, const std::vector<std::string>& cpu_features,
                       const ir::Graph& graph, const std::vector<codegen::KernelCall>& calls) {
    support::TextWriter out;
    out.word(kMagic).text(device).integer(static_cast<std::int64_t>(cpu_features.size()));
    for (const std::string& feature : cpu_features) out.text(feature);
    out.line();
    out.text(ir::serialize(graph)).line();
    out.word("calls").integer(static_cast<std::int64_t>(calls.size())).line();
    for (const codegen::KernelCall& call : calls) {
        if (!call.alternative.empty()) throw Error("internal: a deployed call still has an alternative to measure");
        out.word("c").text(call.backend).text(call.function).ids(call.nodes).ids(call.arguments);
        out.integer(call.parameter_stage).integer(call.may_overwrite).integer(call.variant).text(call.description);
        out.line();
    }
    return out.str();
}

DeploymentPlan read_plan(std::string_view text) {
    support::TextReader in(text, "deployment plan");
    in.expect(kMagic);
    DeploymentPlan plan;
    plan.device = in.text();
    const std::int64_t features = in.integer();
    for (std::int64_t k = 0; k < features; ++k) plan.cpu_features.push_back(in.text());
    plan.graph = ir::deserialize(in.text());
    in.expect("calls");
    const std::int64_t count = in.integer();
    const int node_count = static_cast<int>(plan.graph.nodes().size());
    const int tensor_count = static_cast<int>(plan.graph.tensor_count());
    for (std::int64_t k = 0; k < count; ++k) {
        in.expect("c");
        codegen::KernelCall call;
        call.backend = in.text();
        call.function = in.text();
        call.nodes = in.ids();
        call.arguments = in.ids();
        call.parameter_stage = in.integer() != 0;
        call.may_overwrite = static_cast<int>(in.integer());
        call.variant = static_cast<int>(in.integer());
        call.description = in.text();
        if (call.nodes.empty() || call.arguments.empty()) in.fail("a call without nodes or arguments");
        for (int node : call.nodes)
            if (node < 0 || node >= node_count) in.fail("a call names node " + std::to_string(node));
        for (int id : call.arguments)
            if (id < 0 || id >= tensor_count) in.fail("a call names tensor %" + std::to_string(id));
        plan.calls.push_back(std::move(call));
    }
    if (!in.at_end()) in.fail("trailing text");
    return plan;
}

namespace {

// The x86 extensions -march=native may use in generated code, by the names
// __builtin_cpu_supports takes (it wants literals, hence the table).
#if defined(__x86_64__) || defined(__i386__)
#define SOL_CPU_FEATURE(name) {name, [] { return __builtin_cpu_supports(name) != 0; }}
const std::pair<const char*, bool (*)()> kCheckedFeatures[] = {
    SOL_CPU_FEATURE("sse4.2"),     SOL_CPU_FEATURE("popcnt"),       SOL_CPU_FEATURE("avx2"),
    SOL_CPU_FEATURE("fma"),        SOL_CPU_FEATURE("f16c"),         SOL_CPU_FEATURE("bmi"),
    SOL_CPU_FEATURE("bmi2"),       SOL_CPU_FEATURE("avxvnni"),      SOL_CPU_FEATURE("avx512f"),
    SOL_CPU_FEATURE("avx512bw"),   SOL_CPU_FEATURE("avx512vl"),     SOL_CPU_FEATURE("avx512dq"),
    SOL_CPU_FEATURE("avx512cd"),   SOL_CPU_FEATURE("avx512vbmi"),   SOL_CPU_FEATURE("avx512vbmi2"),
    SOL_CPU_FEATURE("avx512ifma"), SOL_CPU_FEATURE("avx512vnni"),   SOL_CPU_FEATURE("avx512bf16"),
    SOL_CPU_FEATURE("avx512fp16"), SOL_CPU_FEATURE("avx512bitalg"), SOL_CPU_FEATURE("avx512vpopcntdq"),
    SOL_CPU_FEATURE("gfni"),       SOL_CPU_FEATURE("vaes"),         SOL_CPU_FEATURE("vpclmulqdq"),
};
#undef SOL_CPU_FEATURE
#else
const std::pair<const char*, bool (*)()> kCheckedFeatures[] = {{"", [] { return false; }}};
#endif

bool cpu_supports(const std::string& feature) {
    for (const auto& [name, supported] : kCheckedFeatures)
        if (feature == name) return supported();
    return false;  // unknown here: counts as missing
}

}  // namespace

std::vector<std::string> host_cpu_features() {
    std::vector<std::string> features;
    for (const auto& [name, supported] : kCheckedFeatures)
        if (*name != '\0' && supported()) features.emplace_back(name);
    return features;
}

std::vector<std::string> missing_cpu_features(const std::vector<std::string>& features) {
    std::vector<std::string> missing;
    for (const std::string& feature : features)
        if (!cpu_supports(feature)) missing.push_back(feature);
    return missing;
}

std::vector<std::size_t> weight_offsets(const ir::Graph& graph) {
    std::vector<std::size_t> offsets;
    std::size_t end = 0;
    for (int id : graph.parameters()) {
        offsets.push_back(end);
        const ir::Tensor& t = graph.tensor(id);
        const std::size_t bytes = static_cast<std::size_t>(ir::element_count(t.shape)) * ir::byte_size(t.dtype);
        end = (end + bytes + kWeightAlignment - 1) / kWeightAlignment * kWeightAlignment;
    }
    offsets.push_back(end);
    return offsets;
}

}  // namespace sol::deploy
