#include "sol/runtime/choose_layout.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "scratch_buffers.h"
#include "sol/error.h"
#include "sol/ir/op_table.h"
#include "sol/ir/serialize.h"
#include "sol/jit/compile_cache.h"
#include "sol/log.h"
#include "sol/support/content_hash.h"

namespace sol::runtime {
namespace {

// Timed calls per layout: at least kFewestRounds, more until every layout
// has run for about kTimingSeconds in all (at most kMostRounds): a batch-1
// squeezenet1_1 gets 30 calls each, a batch-8 resnet50 four (each timed
// call follows an untimed one, see time_candidates).
constexpr int kFewestRounds = 3;
constexpr int kMostRounds = 30;
constexpr double kTimingSeconds = 1.0;
// Other layouts are compiled and timed only where a call in the device's
// own takes at least this long (SOL_LAYOUT_TIMING_MS, default 5 ms): on
// shorter calls the layouts differed by tens of microseconds (densenet169 at
// 32x32: 2.11 against 2.18 ms).
double worth_timing_seconds() {
    const char* text = std::getenv("SOL_LAYOUT_TIMING_MS");
    if (text == nullptr || *text == '\0') return 5e-3;
    char* end = nullptr;
    const double milliseconds = std::strtod(text, &end);
    if (*end != '\0' || !(milliseconds >= 0))
        throw Error(std::string("SOL_LAYOUT_TIMING_MS=") + text + " is not a number of milliseconds >= 0");
    return milliseconds * 1e-3;
}

// Nor where compiling the device's own layout took longer than this: each
// other layout costs about as long again, for a few percent per call.
constexpr double kMostCompileSeconds = 10;

// Another layout replaces the device's own choice only when its median is
// this much lower: closer than that is noise on a busy machine, and the
// device's choice is the one the tests exercise most.
constexpr double kMargin = 0.02;

const std::string kExtension = ".layout";

struct Candidate {
    std::string layout;
    std::unique_ptr<CompiledModel> model;
    std::vector<double> seconds;
};

double median(std::vector<double> values) {
    std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
    return values[values.size() / 2];
}

// The layout saved under `key`, if it is still one of `layouts`.
std::optional<std::string> load_choice(const std::string& key, const std::vector<std::string>& layouts) {
    const std::optional<std::filesystem::path> path = jit::find_artifact(key, kExtension);
    if (!path) return std::nullopt;
    std::string layout;
    std::getline(std::ifstream(*path), layout);
    if (std::find(layouts.begin(), layouts.end(), layout) == layouts.end()) return std::nullopt;
    return layout;
}

// Best effort: a cache that cannot be written means measuring again next time.
void save_choice(const std::string& key, const std::string& layout) {
    try {
        const std::filesystem::path partial = jit::temporary_path(key, kExtension);
        std::ofstream(partial) << layout << '\n';
        jit::store_artifact(key, kExtension, partial);
    } catch (const std::exception& error) {
        log::debug("layout choice not saved: " + std::string(error.what()));
    }
}

std::string milliseconds(double seconds) {
    std::ostringstream out;
    out.precision(seconds < 1e-2 ? 3 : 1);
    out << std::fixed << seconds * 1e3 << " ms";
    return out.str();
}

// Random inputs and parameters (integers zero) and output buffers for
// whole calls; every candidate compiles the same graph, so all take them.
class CallOperands {
public:
    CallOperands(devices::Device& device, const CompiledModel& model, int threads)
        : device_(device), scratch_(device), threads_(threads) {
        for (const auto& t : model.inputs()) inputs_.push_back(scratch_.add(ir::element_count(t.shape), t.dtype));
        for (const auto& t : model.parameters())
            parameters_.push_back(scratch_.add(ir::element_count(t.shape), t.dtype));
        for (const auto& t : model.outputs()) outputs_.push_back(scratch_.add(ir::element_count(t.shape), t.dtype));
    }
    // Seconds one call of `model` takes.
    double call(CompiledModel& model, bool parameters_changed) {
        const auto start = std::chrono::steady_clock::now();
        model.run(inputs_, parameters_, outputs_, parameters_changed, threads_);
        device_.synchronize();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    // The parameter stage (reordered weights), then one call as timed;
    // first of all calls of `model`.
    void warm_up(CompiledModel& model) {
        if (model.inputs().size() != inputs_.size() || model.parameters().size() != parameters_.size() ||
            model.outputs().size() != outputs_.size())
            throw Error("internal: the " + model.layout() + " layout changed the model's operands");
        call(model, true);
        call(model, false);
    }

private:
    devices::Device& device_;
    ScratchBuffers scratch_;
    int threads_;
    std::vector<void*> inputs_, parameters_, outputs_;
};

// Times whole calls of every candidate, interleaved round by round so that
// a slow phase of the machine hits all alike, and returns the index of the
// one to keep. Each timed call follows an untimed one of the same model:
// right after another model's call the caches hold that model's weights
// (squeezenet1_1 at batch 1 took 3.3 ms per call so instead of 1.7). The
// candidates come warmed up.
std::size_t time_candidates(CallOperands& operands, std::vector<Candidate>& candidates) {
    double total = 0;
    for (int round = 0; round < kMostRounds && (round < kFewestRounds || total < kTimingSeconds); ++round)
        for (Candidate& candidate : candidates) {
            const double refill = operands.call(*candidate.model, false);
            candidate.seconds.push_back(operands.call(*candidate.model, false));
            total += (refill + candidate.seconds.back()) / static_cast<double>(candidates.size());
        }

    std::size_t best = 0;
    std::string report;
    for (std::size_t k = 0; k < candidates.size(); ++k) {
        const double seconds = median(candidates[k].seconds);
        report += (k > 0 ? ", " : "") + candidates[k].layout + " " + milliseconds(seconds);
        if (seconds < median(candidates[best].seconds)) best = k;
    }
    if (median(candidates[best].seconds) > (1 - kMargin) * median(candidates.front().seconds)) best = 0;
    log::progress("layouts timed (median of " + std::to_string(candidates.front().seconds.size()) +
                  " calls): " + report + "; keeping " + candidates[best].layout);
    return best;
}

}  // namespace

std::unique_ptr<CompiledModel> compile_fastest_layout(const ir::Graph& graph, devices::Device& device,
                                                      const CompileOptions& options) {
    auto compile = [&](const std::string& layout) {
        CompileOptions chosen = options;
        chosen.layout = layout;
        return std::make_unique<CompiledModel>(graph, device, chosen);
    };
    const std::vector<std::string> layouts = device.layouts();
    // A user's kernel (sol.nn.CustomLayer) is not run on made-up data behind the user's back.
    const bool runs_user_code = std::any_of(graph.nodes().begin(), graph.nodes().end(),
                                            [](const ir::Node& node) { return ir::is_custom(node.op); });
    if (!options.layout.empty() || layouts.size() < 2 || !options.autotuning || options.weights_change_every_call ||
        runs_user_code)
        return compile(options.layout);

    // The layouts that lower this graph differently (an MLP has no image
    // tensors: every layout gives the same kernels). Their lowered graphs,
    // with the device, its compiler and the thread count, key the choice.
    if (options.threads > 0) omp_set_num_threads(options.threads);
    std::vector<std::string> distinct;
    std::set<std::string> lowerings;
    std::string key_text = device.name() + "\n" + device.compiler_description() + "\n" +
                           std::to_string(omp_get_max_threads()) + " threads\n";
    for (const std::string& layout : layouts) {
        ir::Graph lowered = graph;
        device.lower(lowered, layout);
        std::string text = ir::serialize(lowered);
        if (!lowerings.insert(text).second) continue;
        distinct.push_back(layout);
        key_text += layout + "\n" + text;
    }
    if (distinct.size() < 2) return compile(layouts.front());
    const std::string key = "layout-" + content_hash(key_text);
    if (const std::optional<std::string> chosen = load_choice(key, distinct)) return compile(*chosen);
    const double worth_timing = worth_timing_seconds();

    // The device's own layout first: where its calls are short, a few
    // percent of them is not worth compiling the network again, nor where
    // compiling it took long (the others take about as long).
    std::vector<Candidate> candidates;
    const auto compile_start = std::chrono::steady_clock::now();
    candidates.push_back({distinct.front(), compile(distinct.front()), {}});
    const double compile_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - compile_start).count();
    CallOperands operands(device, *candidates.front().model, options.threads);
    operands.warm_up(*candidates.front().model);
    std::vector<double> first_calls;
    for (int k = 0; k < kFewestRounds; ++k) first_calls.push_back(operands.call(*candidates.front().model, false));
    if (worth_timing > 0 && (median(first_calls) < worth_timing || compile_seconds > kMostCompileSeconds)) {
        log::debug("layout " + distinct.front() + " kept untimed: " + milliseconds(median(first_calls)) +
                   " per call, compiled in " + std::to_string(compile_seconds) + " s");
        save_choice(key, distinct.front());
        return std::move(candidates.front().model);
    }

    std::string names;
    for (const std::string& layout : distinct) names += (names.empty() ? "" : ", ") + layout;
    log::progress("compiling and timing this network in " + std::to_string(distinct.size()) + " layouts (" + names +
                  ") to keep the fastest; measured once, then cached");
    for (std::size_t k = 1; k < distinct.size(); ++k) {
        candidates.push_back({distinct[k], compile(distinct[k]), {}});
        operands.warm_up(*candidates.back().model);
    }
    const std::size_t best = time_candidates(operands, candidates);
    save_choice(key, candidates[best].layout);
    candidates[best].model->set_timed_layouts(static_cast<int>(candidates.size()));
    return std::move(candidates[best].model);
}

}  // namespace sol::runtime
