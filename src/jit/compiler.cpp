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

namespace {

// Writes `text` to `path` through a temporary file: another process may be
// compiling the same source and must never read a half-written file.
void write_atomically(const std::string& key, const std::string& extension, const fs::path& path,
                      const std::string& text) {
    const fs::path partial = temporary_path(key, extension);
    std::ofstream(partial) << text;
    fs::rename(partial, path);
}

// Runs the compiler commands at once, one process each; a progress line
// when they take more than 2 s. Returns the index of the first that failed,
// with its exit status, or -1.
std::pair<int, int> run_all(const Compiler& compiler, const std::vector<std::vector<std::string>>& commands,
                            const std::vector<fs::path>& logs, const std::string& what, const fs::path& shown_log) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::future<int>> jobs;
    for (std::size_t k = 0; k < commands.size(); ++k)
        jobs.push_back(std::async(std::launch::async, [&, k] { return run_command(commands[k], logs[k].string()); }));
    // Short compiles stay silent; a long one says what it is doing.
    bool announced = false;
    if (jobs.front().wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
        log::progress("compiling " + what + " with " + compiler.executable +
                      (commands.size() > 1 ? " in " + std::to_string(commands.size()) + " parallel parts" : "") +
                      " (log: " + shown_log.string() + ") ...");
        announced = true;
    }
    std::pair<int, int> failed{-1, 0};
    for (std::size_t k = 0; k < jobs.size(); ++k) {
        const int status = jobs[k].get();
        if (status != 0 && failed.first < 0) failed = {static_cast<int>(k), status};
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (announced) log::progress("compiled " + what + " in " + std::to_string(seconds).substr(0, 4) + " s");
    return failed;
}

[[noreturn]] void compile_failed(const Compiler& compiler, int status, const fs::path& source, const fs::path& log) {
    throw CompileError("compiler '" + compiler.executable + "' " +
                       (status < 0 ? std::string("could not be run") : "failed (exit " + std::to_string(status) + ")") +
                       " on " + source.string() + "; full log: " + log.string() + "\n" + first_lines_of(log, 12));
}

}  // namespace

fs::path build_shared_library(const Compiler& compiler, const std::string& source, const std::string& what,
                              const std::vector<std::string>& units) {
    const std::string key = content_hash(compiler.identity() + "\n" + source);
    // Source and log stay in the cache folder so a user can read both.
    const fs::path source_path = cache_directory() / (key + compiler.source_extension);
    if (auto cached = find_artifact(key, ".so")) {
        log::debug("cache hit for " + what + ": " + cached->string() + " (source: " + source_path.string() + ")");
        return *cached;
    }
    const fs::path log_path = cache_directory() / (key + ".log");
    write_atomically(key, compiler.source_extension, source_path, source);
    const fs::path built = temporary_path(key, ".so");
    auto command = [&compiler](std::vector<std::string> tail) {
        std::vector<std::string> argv{compiler.executable};
        argv.insert(argv.end(), compiler.flags.begin(), compiler.flags.end());
        argv.insert(argv.end(), tail.begin(), tail.end());
        return argv;
    };
    auto clean_up = [](const std::vector<fs::path>& paths) {
        std::error_code error;
        for (const fs::path& path : paths) fs::remove(path, error);
    };
    if (units.size() < 2) {
        log::debug("compiling " + what + ": " + source_path.string());
        const auto [failed, status] =
            run_all(compiler, {command({source_path.string(), "-o", built.string()})}, {log_path}, what, log_path);
        if (failed >= 0 || !fs::exists(built)) {
            clean_up({built});
            compile_failed(compiler, failed >= 0 ? status : 0, source_path, log_path);
        }
        return store_artifact(key, ".so", built);
    }
    // Each part compiles to an object file at the same time, then one link.
    std::vector<fs::path> part_sources, objects, logs;
    std::vector<std::vector<std::string>> commands;
    for (std::size_t k = 0; k < units.size(); ++k) {
        const std::string part = ".part" + std::to_string(k);
        part_sources.push_back(cache_directory() / (key + part + compiler.source_extension));
        write_atomically(key, part + compiler.source_extension, part_sources.back(), units[k]);
        objects.push_back(temporary_path(key, part + ".o"));
        logs.push_back(cache_directory() / (key + part + ".log"));
        commands.push_back(command({"-c", part_sources.back().string(), "-o", objects.back().string()}));
    }
    log::debug("compiling " + what + " in " + std::to_string(units.size()) + " parts: " + source_path.string());
    const auto [failed, status] = run_all(compiler, commands, logs, what, log_path);
    if (failed >= 0) {
        clean_up(objects);
        compile_failed(compiler, status, part_sources[failed], logs[failed]);
    }
    std::vector<std::string> link{"-o", built.string()};
    for (const fs::path& object : objects) link.push_back(object.string());
    const auto [link_failed, link_status] = run_all(compiler, {command(link)}, {log_path}, what + " (link)", log_path);
    clean_up(objects);
    if (link_failed >= 0 || !fs::exists(built)) {
        clean_up({built});
        compile_failed(compiler, link_failed >= 0 ? link_status : 0, source_path, log_path);
    }
    return store_artifact(key, ".so", built);
}

void build_library(const Compiler& compiler, const std::vector<SourceUnit>& units,
                   const std::vector<std::string>& link_arguments, const fs::path& output, const std::string& what) {
    std::vector<std::vector<std::string>> commands;
    std::vector<fs::path> objects, logs;
    for (const SourceUnit& unit : units) {
        objects.push_back(fs::path(unit.path).replace_extension(".o"));
        logs.push_back(fs::path(unit.path).replace_extension(".log"));
        std::vector<std::string> argv{compiler.executable};
        argv.insert(argv.end(), compiler.flags.begin(), compiler.flags.end());
        argv.insert(argv.end(), unit.flags.begin(), unit.flags.end());
        argv.insert(argv.end(), {"-c", unit.path.string(), "-o", objects.back().string()});
        commands.push_back(std::move(argv));
    }
    const auto [failed, status] = run_all(compiler, commands, logs, what, logs.front());
    if (failed >= 0) compile_failed(compiler, status, units[failed].path, logs[failed]);
    std::vector<std::string> link{compiler.executable};
    link.insert(link.end(), compiler.flags.begin(), compiler.flags.end());
    link.insert(link.end(), {"-o", output.string()});
    for (const fs::path& object : objects) link.push_back(object.string());
    link.insert(link.end(), link_arguments.begin(), link_arguments.end());
    const fs::path link_log = units.front().path.parent_path() / "link.log";
    const auto [link_failed, link_status] = run_all(compiler, {link}, {link_log}, what + " (link)", link_log);
    if (link_failed >= 0 || !fs::exists(output))
        compile_failed(compiler, link_failed >= 0 ? link_status : 0, output, link_log);
    std::error_code error;
    for (const fs::path& object : objects) fs::remove(object, error);
}

}  // namespace sol::jit
