// Small helpers shared by the C++ unit tests: attribute lists, graph queries,
// temporary folders and environment variables restored at scope exit.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "sol/ir/graph.h"
#include "sol/ir/print.h"
#include "sol/ir/verify.h"

// Readable dtypes and ops in gtest's failure messages.
namespace sol::ir {
inline void PrintTo(DType dtype, std::ostream* out) { *out << name(dtype); }
inline void PrintTo(Op op, std::ostream* out) { *out << name(op); }
}  // namespace sol::ir

namespace soltest {

namespace ir = sol::ir;

inline ir::Attributes attrs(std::initializer_list<std::pair<std::string, ir::AttributeValue>> values = {}) {
    ir::Attributes result;
    for (const auto& [key, value] : values) result.set(key, value);
    return result;
}

using Ints = std::vector<std::int64_t>;

// The CPU has the AVX-512 subsets oneDNN's "avx512_core" kernels need (its
// Winograd convolutions among them).
inline bool has_avx512_core() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

inline std::vector<ir::Op> ops(const ir::Graph& graph) {
    std::vector<ir::Op> result;
    for (const ir::Node& node : graph.nodes()) result.push_back(node.op);
    return result;
}

inline std::string op_names(const ir::Graph& graph) {
    std::string text;
    for (const ir::Node& node : graph.nodes()) text += (text.empty() ? "" : " ") + std::string(ir::name(node.op));
    return text;
}

inline int count_op(const ir::Graph& graph, ir::Op op) {
    const auto list = ops(graph);
    return static_cast<int>(std::count(list.begin(), list.end(), op));
}

// The node producing `tensor`, or nullptr for inputs, parameters and constants.
inline const ir::Node* producer(const ir::Graph& graph, int tensor) {
    const int index = graph.tensor(tensor).producer;
    return index < 0 ? nullptr : &graph.nodes()[index];
}

inline const ir::Node& node_producing(const ir::Graph& graph, int tensor) {
    const ir::Node* node = producer(graph, tensor);
    if (node == nullptr) throw std::runtime_error("tensor %" + std::to_string(tensor) + " has no producer");
    return *node;
}

inline std::vector<std::string> parameter_names(const ir::Graph& graph) {
    std::vector<std::string> names;
    for (int id : graph.parameters()) names.push_back(graph.tensor(id).name);
    return names;
}

inline bool has_parameter(const ir::Graph& graph, const std::string& name) {
    const auto names = parameter_names(graph);
    return std::find(names.begin(), names.end(), name) != names.end();
}

// A fresh folder under the system's temporary folder, removed at scope exit.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "sol-unit-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code error;
        std::filesystem::remove_all(path_, error);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// Sets (or unsets, with nullopt) an environment variable until scope exit.
class ScopedEnv {
public:
    ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
        if (const char* old = std::getenv(name_.c_str())) old_ = old;
        if (value)
            setenv(name_.c_str(), value->c_str(), 1);
        else
            unsetenv(name_.c_str());
    }
    ~ScopedEnv() {
        if (old_)
            setenv(name_.c_str(), old_->c_str(), 1);
        else
            unsetenv(name_.c_str());
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

// Fixture for tests that compile: a fresh, private SOL_CACHE_DIR.
class FreshCache : public ::testing::Test {
protected:
    TempDir cache_;
    ScopedEnv cache_env_{"SOL_CACHE_DIR", cache_.path().string()};
};

inline std::vector<float> random_floats(std::size_t count, unsigned seed, float low = -1.0f, float high = 1.0f) {
    std::mt19937 engine(seed);
    std::uniform_real_distribution<float> distribution(low, high);
    std::vector<float> values(count);
    for (float& v : values) v = distribution(engine);
    return values;
}

// The largest magnitude of `values`: the scale of a tolerance for outputs that reach tens.
inline float largest_magnitude(const std::vector<float>& values) {
    float largest = 0.0f;
    for (float v : values) largest = std::max(largest, std::abs(v));
    return largest;
}

inline float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return std::numeric_limits<float>::infinity();
    float worst = 0.0f;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const float d = std::abs(a[i] - b[i]);
        if (!(d <= worst)) worst = d;  // NaN counts as the worst
    }
    return worst;
}

// Verifies, and reports the graph as text on failure.
inline void expect_valid(const ir::Graph& graph, const std::string& context) {
    try {
        ir::verify(graph, context);
    } catch (const std::exception& error) {
        ADD_FAILURE() << error.what() << "\n" << ir::to_text(graph);
    }
}

}  // namespace soltest
