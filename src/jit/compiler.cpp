#include "sol/jit/compiler.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <future>
#include <sstream>

#include "sol/error.h"
#include "sol/jit/compile_cache.h"
#include "sol/log.h"
#include "sol/support/content_hash.h"

extern char** environ;

namespace fs = std::filesystem;

namespace sol::jit {
namespace {

// Runs `argv` without a shell, stdout and stderr into `log_path` (or
// /dev/null). Returns the exit status, or -1 when it could not start.
int run_command(const std::vector<std::string>& argv, const std::string& log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int started = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (started != 0) return -1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string first_line_of(const fs::path& path) {
    std::string line;
    std::getline(std::ifstream(path), line);
    return line;
}

std::string first_lines_of(const fs::path& path, int count) {
    std::ifstream in(path);
    std::string text, line;
    for (int i = 0; i < count && std::getline(in, line); ++i) text += "    " + line + "\n";
    return text;
}

// The CPU model and feature list: -march=native code is only valid on a
// machine that has the same ones.
std::string host_machine() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line, model, features;
    while (std::getline(cpuinfo, line) && (model.empty() || features.empty())) {
        if (model.empty() && line.rfind("model name", 0) == 0) model = line.substr(line.find(':') + 1);
        if (features.empty() && (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0))
            features = line.substr(line.find(':') + 1);
    }
    return model + " / " + content_hash(features).substr(0, 12);
}

std::optional<Compiler> probe(const std::string& executable) {
    const fs::path log = fs::temp_directory_path() / ("sol-probe-" + std::to_string(getpid()) + ".txt");
    const int status = run_command({executable, "--version"}, log.string());
    Compiler compiler;
    compiler.executable = executable;
    compiler.version = first_line_of(log);
    std::error_code error;
    fs::remove(log, error);
    if (status != 0) return std::nullopt;
    return compiler;
}

}  // namespace

std::string Compiler::flag_text() const {
    std::string text;
    for (const std::string& flag : flags) text += (text.empty() ? "" : " ") + flag;
    return text;
}

std::string Compiler::identity() const { return executable + "|" + version + "|" + flag_text() + "|" + machine; }

Compiler find_host_compiler() {
    std::vector<std::string> candidates;
    if (const char* cxx = std::getenv("CXX"); cxx && *cxx) {
        candidates.push_back(cxx);  // an explicit choice is not second-guessed
    } else {
        candidates = {"c++", "g++", "clang++"};
    }
    for (const std::string& candidate : candidates) {
        if (auto compiler = probe(candidate)) {
            compiler->flags = {"-std=c++17", "-O3", "-march=native", "-fopenmp", "-fno-math-errno",
                               "-fPIC", "-shared"};
            compiler->machine = host_machine();
            return *compiler;
        }
    }
    std::string tried;
    for (const std::string& candidate : candidates) tried += (tried.empty() ? "" : ", ") + candidate;
    throw CompileError("no working C++ compiler found (tried " + tried +
                       "); install g++ or set CXX to a compiler that runs");
}

fs::path build_shared_library(const Compiler& compiler, const std::string& source, const std::string& what) {
    const std::string key = content_hash(compiler.identity() + "\n" + source);
    // Source and log stay in the cache folder so a user can read both.
    const fs::path source_path = cache_directory() / (key + compiler.source_extension);
    if (auto cached = find_artifact(key, ".so")) {
        log::debug("cache hit for " + what + ": " + cached->string() + " (source: " + source_path.string() + ")");
        return *cached;
    }
    const fs::path log_path = cache_directory() / (key + ".log");
    {
        // Another process may be compiling the same source: never let it read
        // a half-written file.
        const fs::path partial = temporary_path(key, compiler.source_extension);
        std::ofstream(partial) << source;
        fs::rename(partial, source_path);
    }
    const fs::path built = temporary_path(key, ".so");
    std::vector<std::string> argv{compiler.executable};
    argv.insert(argv.end(), compiler.flags.begin(), compiler.flags.end());
    argv.insert(argv.end(), {source_path.string(), "-o", built.string()});
    log::debug("compiling " + what + ": " + source_path.string());

    const auto start = std::chrono::steady_clock::now();
    auto job = std::async(std::launch::async, [&] { return run_command(argv, log_path.string()); });
    // Short compiles stay silent; a long one says what it is doing.
    bool announced = false;
    if (job.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
        log::progress("compiling " + what + " with " + compiler.executable + " (log: " + log_path.string() + ") ...");
        announced = true;
    }
    const int status = job.get();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (announced) log::progress("compiled " + what + " in " + std::to_string(seconds).substr(0, 4) + " s");
    if (status != 0 || !fs::exists(built)) {
        std::error_code error;
        fs::remove(built, error);
        throw CompileError("compiler '" + compiler.executable + "' " +
                           (status < 0 ? std::string("could not be run") : "failed (exit " + std::to_string(status) + ")") +
                           " on " + source_path.string() + "; full log: " + log_path.string() + "\n" +
                           first_lines_of(log_path, 12));
    }
    return store_artifact(key, ".so", built);
}

}  // namespace sol::jit
