// Stable 128-bit content hash (xxHash's XXH3) as 32 hex digits: names
// generated kernels and keys the compile cache. Stable across processes and
// builds, unlike std::hash.
#pragma once

#include <string>
#include <string_view>

namespace sol {

std::string content_hash(std::string_view data);

}  // namespace sol
