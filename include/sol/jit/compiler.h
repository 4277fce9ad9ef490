// Driver for a command-line compiler that turns generated source into a
// shared library, through the compile cache.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sol::jit {

struct Compiler {
    std::string executable;          // as found on PATH or given by $CXX
    std::string version;             // first line of `executable --version`
    std::vector<std::string> flags;  // e.g. -O3 -march=native -fopenmp
    std::string source_extension = ".cpp";
    std::string machine;             // what the flags target (host CPU model and features)

    std::string flag_text() const;
    // Everything besides the source that changes the artifact.
    std::string identity() const;
};

// The host C++ compiler: $CXX, else c++, g++, clang++ on PATH. Throws
// sol::CompileError naming what was tried when none runs.
Compiler find_host_compiler();

// Compiles `source` into a shared library, or returns the cached one. A
// failure throws sol::CompileError naming the compiler, the source path and
// the log path, with the first lines of the log. `what` names the work in
// progress messages ("12 kernels"). With two or more `units` (the same code
// split into translation units), those are compiled in parallel, one
// compiler process each, and linked; `source` is still what the cache keeps
// for reading and what the cache key hashes.
std::filesystem::path build_shared_library(const Compiler& compiler, const std::string& source,
                                           const std::string& what, const std::vector<std::string>& units = {});

// One translation unit of build_library, with flags of its own (added
// after the compiler's).
struct SourceUnit {
    std::filesystem::path path;
    std::vector<std::string> flags;
};

// Compiles `units` into objects in parallel (one compiler process each,
// objects and logs beside the sources) and links them with
// `link_arguments` (archives, -l flags) into the shared library `output`
// (its log: link.log beside the first unit).
// Not cached: deploy/ writes libraries the user keeps. Progress lines and
// errors as build_shared_library's.
void build_library(const Compiler& compiler, const std::vector<SourceUnit>& units,
                   const std::vector<std::string>& link_arguments, const std::filesystem::path& output,
                   const std::string& what);

}  // namespace sol::jit
