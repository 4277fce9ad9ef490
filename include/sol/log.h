// Minimal leveled logging to stderr. The level comes from SOL_LOG
// (error, warning, info, debug); the default is warning.
#pragma once

#include <string_view>

namespace sol::log {

enum class Level { Error = 0, Warning = 1, Info = 2, Debug = 3 };

bool enabled(Level level);
void write(Level level, std::string_view message);

inline void debug(std::string_view message) { write(Level::Debug, message); }
inline void info(std::string_view message) { write(Level::Info, message); }
inline void warning(std::string_view message) { write(Level::Warning, message); }
// Progress of long work (compiles); shown unless SOL_LOG=error.
void progress(std::string_view message);

}  // namespace sol::log
