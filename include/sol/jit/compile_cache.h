// On-disk cache of compiled artifacts, keyed by a content hash of the source,
// the compiler and its flags.
//
// Entries are written under a temporary name and renamed into place, with a
// checksum file beside each artifact; an entry whose checksum does not match
// (truncated, overwritten) is removed and rebuilt, never loaded.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace sol::jit {

// SOL_CACHE_DIR, else $XDG_CACHE_HOME/sol, else ~/.cache/sol. If that folder
// cannot be written, a private temporary folder is used and a warning says so.
std::filesystem::path cache_directory();

// Removes every cached artifact and source; returns how many files went.
std::size_t clear_cache();

// The verified artifact stored under `key`, if there is one.
std::optional<std::filesystem::path> find_artifact(const std::string& key, const std::string& extension);

// Moves `built` into the cache as `key` (atomically) and returns its path.
std::filesystem::path store_artifact(const std::string& key, const std::string& extension,
                                     const std::filesystem::path& built);

// A fresh name in the cache folder for a file about to be built.
std::filesystem::path temporary_path(const std::string& key, const std::string& extension);

}  // namespace sol::jit
