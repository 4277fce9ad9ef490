#include "sol/jit/compile_cache.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <unistd.h>

#include "sol/error.h"
#include "sol/log.h"
#include "sol/support/content_hash.h"

namespace fs = std::filesystem;

namespace sol::jit {
namespace {

fs::path preferred_directory() {
    if (const char* dir = std::getenv("SOL_CACHE_DIR"); dir && *dir) return dir;
    if (const char* dir = std::getenv("XDG_CACHE_HOME"); dir && *dir) return fs::path(dir) / "sol";
    if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "sol";
    return fs::temp_directory_path() / ("sol-cache-" + std::to_string(getuid()));
}

bool writable_directory(const fs::path& dir) {
    std::error_code error;
    fs::create_directories(dir, error);
    if (!fs::is_directory(dir)) return false;
    const fs::path probe = dir / (".probe-" + std::to_string(getpid()));
    { std::ofstream(probe) << "ok"; }
    const bool ok = fs::exists(probe);
    fs::remove(probe, error);
    return ok;
}

std::string file_checksum(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream data;
    data << in.rdbuf();
    return content_hash(data.str()) + " " + std::to_string(data.str().size());
}

fs::path artifact_path(const std::string& key, const std::string& extension) {
    return cache_directory() / (key + extension);
}

fs::path checksum_path(const fs::path& artifact) { return fs::path(artifact.string() + ".xxh"); }

}  // namespace

fs::path cache_directory() {
    // Resolved per call (SOL_CACHE_DIR may change between calls in one
    // process), but the fallback folder is made once and reused.
    static std::mutex mutex;
    static fs::path fallback_for;  // the preferred folder that failed
    static fs::path fallback;
    const fs::path preferred = preferred_directory();
    std::lock_guard<std::mutex> lock(mutex);
    if (!fallback.empty() && preferred == fallback_for) return fallback;
    if (writable_directory(preferred)) return preferred;
    std::string pattern = (fs::temp_directory_path() / "sol-cache-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
        throw Error("cache folder " + preferred.string() + " is not writable and no temporary folder could be made");
    fallback_for = preferred;
    fallback = pattern;
    log::warning("cache folder " + preferred.string() + " is not writable; using " + fallback.string() +
                 " for this process (set SOL_CACHE_DIR to a writable folder to keep compiled kernels)");
    return fallback;
}

std::size_t clear_cache() {
    std::size_t removed = 0;
    std::error_code error;
    for (const auto& entry : fs::recursive_directory_iterator(cache_directory(), error))
        if (entry.is_regular_file()) ++removed;
    for (const auto& entry : fs::directory_iterator(cache_directory(), error)) fs::remove_all(entry.path(), error);
    return removed;
}

std::optional<fs::path> find_artifact(const std::string& key, const std::string& extension) {
    const fs::path artifact = artifact_path(key, extension);
    const fs::path checksum = checksum_path(artifact);
    if (!fs::exists(artifact) && !fs::exists(checksum)) return std::nullopt;
    std::string expected;
    std::getline(std::ifstream(checksum), expected);
    if (fs::exists(artifact) && !expected.empty() && file_checksum(artifact) == expected) return artifact;
    // Not deleted: another process may be renaming a fresh copy in right now.
    // The rebuilt artifact replaces this one atomically.
    log::warning("cache entry " + artifact.string() + " is damaged or incomplete (checksum mismatch); rebuilding it");
    return std::nullopt;
}

fs::path temporary_path(const std::string& key, const std::string& extension) {
    static std::atomic<unsigned> counter{0};
    std::random_device random;
    return cache_directory() / ("tmp-" + key + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++) +
                                "-" + std::to_string(random()) + extension);
}

fs::path store_artifact(const std::string& key, const std::string& extension, const fs::path& built) {
    const fs::path artifact = artifact_path(key, extension);
    const fs::path checksum_temporary = temporary_path(key, ".xxh");
    { std::ofstream(checksum_temporary) << file_checksum(built) << "\n"; }
    // Artifact first, checksum last: a reader that sees the checksum also sees
    // the finished artifact; rename within one folder is atomic.
    fs::rename(built, artifact);
    fs::rename(checksum_temporary, checksum_path(artifact));
    return artifact;
}

}  // namespace sol::jit
