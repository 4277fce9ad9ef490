#include "sol/log.h"

#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>

namespace sol::log {
namespace {

Level level_from_environment() {
    const char* text = std::getenv("SOL_LOG");
    if (text == nullptr) return Level::Warning;
    const std::string value(text);
    if (value == "debug") return Level::Debug;
    if (value == "info") return Level::Info;
    if (value == "error") return Level::Error;
    return Level::Warning;
}

}  // namespace

bool enabled(Level level) {
    // Read per call rather than once: tests and users flip SOL_LOG at run time.
    return static_cast<int>(level) <= static_cast<int>(level_from_environment());
}

void write(Level level, std::string_view message) {
    if (!enabled(level)) return;
    static std::mutex mutex;  // keep lines from concurrent threads whole
    static constexpr const char* kPrefix[] = {"error", "warning", "info", "debug"};
    std::lock_guard<std::mutex> lock(mutex);
    std::cerr << "[sol " << kPrefix[static_cast<int>(level)] << "] " << message << '\n';
}

void progress(std::string_view message) {
    if (!enabled(Level::Warning)) return;
    static std::mutex mutex;
    std::lock_guard<std::mutex> lock(mutex);
    std::cerr << "[sol] " << message << std::endl;
}

}  // namespace sol::log
